/*
 * IPC credentials: the bearer token and the self-signed TLS certificate.
 *
 * Creation is serialised by an flock on "<token_path>.lock" so that the
 * supervisor and several frontends starting at once agree on one token and
 * one certificate. Within the lock a file is written under a temporary name
 * and linked into place: link() fails with EEXIST instead of replacing, so
 * even a writer that ignores the lock can never have its file rewritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "credentials.h"
#include "fsutil.h"

#define CS_TOKEN_BYTES      32
#define CS_CERT_DAYS        3650
#define CS_FILE_MAX         (1024 * 1024)

static void cs_cred_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cs_cred_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The first queued OpenSSL error, for messages; the queue is cleared. */
static const char *
cs_cred_ssl_reason(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_get_error();

    if (e == 0) {
        return "unknown error";
    }

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

/* Read a whole (small) file into a NUL-terminated malloc'ed buffer. */
static int
cs_cred_read_file(const char *path, char **data, size_t *len, char *err,
    size_t errlen)
{
    char *buf = NULL;
    size_t used = 0, cap = 0;
    ssize_t n;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        cs_cred_err(err, errlen, "open %s: %s", path, strerror(errno));
        return rc;
    }

    for (;;) {
        if (cap - used < 4096) {
            char *nbuf;

            if (cap >= CS_FILE_MAX) {
                rc = -EFBIG;
                cs_cred_err(err, errlen, "read %s: file too large", path);
                goto out_close;
            }
            cap = cap ? cap * 2 : 8192;
            nbuf = realloc(buf, cap + 1);
            if (nbuf == NULL) {
                rc = -ENOMEM;
                cs_cred_err(err, errlen, "read %s: out of memory", path);
                goto out_close;
            }
            buf = nbuf;
        }

        n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            cs_cred_err(err, errlen, "read %s: %s", path, strerror(errno));
            goto out_close;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
    }

    buf[used] = '\0';
    *data = buf;
    *len = used;
    buf = NULL;

out_close:
    close(fd);
    free(buf);
    return rc;
}

static int
cs_cred_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Write data to a mode 0600 temporary file beside path, then link it to
 * path. -EEXIST when path appeared meanwhile (left untouched).
 */
static int
cs_cred_install(const char *path, const char *data, size_t len, char *err,
    size_t errlen)
{
    char tmp[4096];
    int fd, rc;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
            (long)getpid()) >= sizeof(tmp)) {
        cs_cred_err(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }

    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        cs_cred_err(err, errlen, "open %s: %s", tmp, strerror(errno));
        return rc;
    }

    rc = cs_cred_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc < 0) {
        cs_cred_err(err, errlen, "write %s: %s", tmp, strerror(-rc));
        goto out_unlink;
    }

    if (link(tmp, path) != 0) {
        rc = -errno;
        if (rc != -EEXIST) {
            cs_cred_err(err, errlen, "link %s: %s", path, strerror(errno));
        }
        goto out_unlink;
    }

out_unlink:
    (void)unlink(tmp);
    return rc;
}

/* A token is one word of printable characters; the trimmed copy is kept. */
static int
cs_cred_token_check(const char *path, char *data, char **token, char *err,
    size_t errlen)
{
    char *start = data, *end;

    while (*start == ' ' || *start == '\t' || *start == '\n' ||
           *start == '\r') {
        start++;
    }
    end = start + strlen(start);
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' ||
           end[-1] == '\n' || end[-1] == '\r')) {
        end--;
    }
    *end = '\0';

    if (*start == '\0') {
        cs_cred_err(err, errlen, "auth token file %s is empty", path);
        return -EINVAL;
    }

    for (const char *p = start; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~') {
            cs_cred_err(err, errlen,
                "auth token file %s holds invalid characters", path);
            return -EINVAL;
        }
    }

    if (token != NULL) {
        *token = strdup(start);
        if (*token == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

int
cs_credentials_read_token(const char *path, char **token, char *err,
    size_t errlen)
{
    char *data;
    size_t len;
    int rc;

    rc = cs_cred_read_file(path, &data, &len, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = cs_cred_token_check(path, data, token, err, errlen);
    free(data);
    return rc;
}

static int
cs_cred_token_create(const char *path, char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[CS_TOKEN_BYTES];
    char text[CS_TOKEN_BYTES * 2 + 2];
    size_t got = 0;
    int rc;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            cs_cred_err(err, errlen, "getrandom: %s", strerror(errno));
            return rc;
        }
        got += (size_t)n;
    }

    for (size_t i = 0; i < sizeof(raw); i++) {
        text[2 * i] = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    text[2 * sizeof(raw)] = '\n';
    text[2 * sizeof(raw) + 1] = '\0';

    rc = cs_cred_install(path, text, 2 * sizeof(raw) + 1, err, errlen);
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(text, sizeof(text));
    return rc;
}

/*
 * Copy every private key block (want_key) or every certificate block from
 * text into a malloc'ed string (NULL when there is none).
 */
static char *
cs_cred_pem_blocks(const char *text, int want_key)
{
    const char *p = text;
    char *out = NULL;
    size_t used = 0;

    while ((p = strstr(p, "-----BEGIN ")) != NULL) {
        const char *label = p + strlen("-----BEGIN ");
        const char *label_end = strstr(label, "-----");
        char endmark[128];
        const char *end;
        size_t llen, blen;
        int is_key;
        char *nout;

        if (label_end == NULL) {
            break;
        }
        llen = (size_t)(label_end - label);
        if (llen + 16 >= sizeof(endmark)) {
            break;
        }
        snprintf(endmark, sizeof(endmark), "-----END %.*s-----", (int)llen,
            label);
        end = strstr(label_end, endmark);
        if (end == NULL) {
            break;
        }
        end += strlen(endmark);

        is_key = memmem(label, llen, "PRIVATE KEY", 11) != NULL;
        if (is_key != want_key ||
            (!want_key && memmem(label, llen, "CERTIFICATE", 11) == NULL)) {
            p = end;
            continue;
        }

        blen = (size_t)(end - p);
        nout = realloc(out, used + blen + 2);
        if (nout == NULL) {
            free(out);
            return NULL;
        }
        out = nout;
        memcpy(out + used, p, blen);
        used += blen;
        out[used++] = '\n';
        out[used] = '\0';
        p = end;
    }
    return out;
}

int
cs_credentials_read_cert(const char *path, char **cert_pem, char **key_pem,
    char *err, size_t errlen)
{
    char *data, *cert, *key;
    size_t len;
    int rc;

    rc = cs_cred_read_file(path, &data, &len, err, errlen);
    if (rc < 0) {
        return rc;
    }

    cert = cs_cred_pem_blocks(data, 0);
    key = cs_cred_pem_blocks(data, 1);
    explicit_bzero(data, len);
    free(data);

    if (cert == NULL) {
        cs_cred_err(err, errlen, "ipc cert file %s holds no certificate",
            path);
        rc = -EINVAL;
        goto out_free;
    }
    if (key == NULL) {
        cs_cred_err(err, errlen, "ipc cert file %s holds no private key",
            path);
        rc = -EINVAL;
        goto out_free;
    }

    *cert_pem = cert;
    *key_pem = key;
    return 0;

out_free:
    free(cert);
    if (key != NULL) {
        explicit_bzero(key, strlen(key));
        free(key);
    }
    return rc;
}

/* An existing certificate file must parse and its key must match. */
static int
cs_cred_cert_check(const char *path, char *err, size_t errlen)
{
    char *cert_pem, *key_pem;
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio;
    int rc;

    rc = cs_credentials_read_cert(path, &cert_pem, &key_pem, err, errlen);
    if (rc < 0) {
        return rc;
    }

    rc = -EINVAL;
    bio = BIO_new_mem_buf(cert_pem, -1);
    if (bio != NULL) {
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (x == NULL) {
        cs_cred_err(err, errlen, "ipc cert file %s: bad certificate: %s",
            path, cs_cred_ssl_reason());
        goto out_free;
    }

    bio = BIO_new_mem_buf(key_pem, -1);
    if (bio != NULL) {
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (pkey == NULL) {
        cs_cred_err(err, errlen, "ipc cert file %s: bad private key: %s",
            path, cs_cred_ssl_reason());
        goto out_free;
    }

    if (X509_check_private_key(x, pkey) != 1) {
        cs_cred_err(err, errlen,
            "ipc cert file %s: private key does not match the certificate",
            path);
        ERR_clear_error();
        goto out_free;
    }
    rc = 0;

out_free:
    EVP_PKEY_free(pkey);
    X509_free(x);
    free(cert_pem);
    explicit_bzero(key_pem, strlen(key_pem));
    free(key_pem);
    return rc;
}

static int
cs_cred_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return 0;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A self-signed P-256 certificate for the loopback names, as PEM text. */
static int
cs_cred_cert_build(BIO *out)
{
    unsigned char serial[16];
    EVP_PKEY *pkey;
    X509 *x = NULL;
    X509_NAME *name;
    BIGNUM *bn = NULL;
    int ok = 0;

    pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        return 0;
    }

    x = X509_new();
    if (x == NULL || X509_set_version(x, 2) != 1) {
        goto out_free;
    }

    /* A positive random 127-bit serial, as RFC 5280 asks. */
    if (getrandom(serial, sizeof(serial), 0) != (ssize_t)sizeof(serial)) {
        goto out_free;
    }
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ==
        NULL) {
        goto out_free;
    }

    /* Back-date a little so that a clock skew does not reject it. */
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), CS_CERT_DAYS, 0, NULL) ==
        NULL) {
        goto out_free;
    }

    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
            (const unsigned char *)"localhost", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 ||
        X509_set_pubkey(x, pkey) != 1) {
        goto out_free;
    }

    /* gRPC clients use this certificate as their root: it must be a CA. */
    if (!cs_cred_add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
        !cs_cred_add_ext(x, NID_key_usage,
            "critical,digitalSignature,keyCertSign") ||
        !cs_cred_add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !cs_cred_add_ext(x, NID_subject_key_identifier, "hash") ||
        !cs_cred_add_ext(x, NID_subject_alt_name,
            "IP:127.0.0.1,IP:::1,DNS:localhost")) {
        goto out_free;
    }

    if (X509_sign(x, pkey, EVP_sha256()) == 0) {
        goto out_free;
    }

    ok = PEM_write_bio_X509(out, x) == 1 &&
        PEM_write_bio_PrivateKey(out, pkey, NULL, NULL, 0, NULL, NULL) == 1;

out_free:
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ok;
}

static int
cs_cred_cert_create(const char *path, char *err, size_t errlen)
{
    BIO *mem;
    char *pem;
    long len;
    int rc;

    mem = BIO_new(BIO_s_secmem());
    if (mem == NULL) {
        cs_cred_err(err, errlen, "BIO_new: %s", cs_cred_ssl_reason());
        return -ENOMEM;
    }

    if (!cs_cred_cert_build(mem)) {
        cs_cred_err(err, errlen, "create ipc certificate: %s",
            cs_cred_ssl_reason());
        rc = -EIO;
        goto out_free;
    }

    len = BIO_get_mem_data(mem, &pem);
    rc = cs_cred_install(path, pem, (size_t)len, err, errlen);

out_free:
    BIO_free(mem);
    return rc;
}

static int
cs_cred_lock(const char *token_path, int *lock_fd, char *err, size_t errlen)
{
    char lock_path[4096];
    int fd, rc;

    if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s.lock",
            token_path) >= sizeof(lock_path)) {
        cs_cred_err(err, errlen, "%s: path too long", token_path);
        return -ENAMETOOLONG;
    }

    fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        cs_cred_err(err, errlen, "open %s: %s", lock_path, strerror(errno));
        return rc;
    }

    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            rc = -errno;
            cs_cred_err(err, errlen, "flock %s: %s", lock_path,
                strerror(errno));
            close(fd);
            return rc;
        }
    }

    *lock_fd = fd;
    return 0;
}

int
cs_credentials_ensure(const char *token_path, const char *cert_path,
    char *err, size_t errlen)
{
    const char *failed = "";
    int lock_fd, rc;

    if (token_path == NULL || cert_path == NULL) {
        cs_cred_err(err, errlen, "credentials: no path given");
        return -EINVAL;
    }

    rc = cs_mkdir_parent(token_path, 0700, &failed);
    if (rc == 0) {
        rc = cs_mkdir_parent(cert_path, 0700, &failed);
    }
    if (rc < 0) {
        cs_cred_err(err, errlen, "mkdir %s: %s", failed, strerror(-rc));
        return rc;
    }

    rc = cs_cred_lock(token_path, &lock_fd, err, errlen);
    if (rc < 0) {
        return rc;
    }

    if (access(token_path, F_OK) != 0) {
        rc = cs_cred_token_create(token_path, err, errlen);
        if (rc < 0 && rc != -EEXIST) {
            goto out_unlock;
        }
    }
    rc = cs_credentials_read_token(token_path, NULL, err, errlen);
    if (rc < 0) {
        goto out_unlock;
    }

    if (access(cert_path, F_OK) != 0) {
        rc = cs_cred_cert_create(cert_path, err, errlen);
        if (rc < 0 && rc != -EEXIST) {
            goto out_unlock;
        }
    }
    rc = cs_cred_cert_check(cert_path, err, errlen);

out_unlock:
    close(lock_fd);
    return rc;
}

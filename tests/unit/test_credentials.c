/*
 * Credentials: the token and certificate a first start creates, what an
 * existing file is left as, and one result when processes race.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "credentials.h"

typedef struct {
    char dir[256];
    char token[512];
    char cert[512];
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->dir, "/tmp/cs-test-cred-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* Nested directories that do not exist yet. */
    snprintf(f->token, sizeof(f->token), "%s/run/a/auth_token", f->dir);
    snprintf(f->cert, sizeof(f->cert), "%s/run/b/ipc_cert.pem", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static char *
slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(fp);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void
spit(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_token_created(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char *token;
    struct stat st;

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);

    assert_int_equal(stat(f->token, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(cs_credentials_read_token(f->token, &token, err,
        sizeof(err)), 0);
    assert_int_equal(strlen(token), 64);
    assert_int_equal(strspn(token, "0123456789abcdef"), 64);
    free(token);
}

static void
test_cert_created(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char *cert_pem, *key_pem;
    X509 *x;
    EVP_PKEY *key;
    BIO *bio;
    struct stat st;
    GENERAL_NAMES *names;
    int seen_v4 = 0, seen_v6 = 0, seen_dns = 0;
    static const unsigned char v4[4] = { 127, 0, 0, 1 };
    static const unsigned char v6[16] = { [15] = 1 };

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);
    assert_int_equal(stat(f->cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(cs_credentials_read_cert(f->cert, &cert_pem, &key_pem,
        err, sizeof(err)), 0);
    assert_non_null(strstr(cert_pem, "-----BEGIN CERTIFICATE-----"));
    assert_null(strstr(cert_pem, "PRIVATE KEY"));
    assert_non_null(strstr(key_pem, "PRIVATE KEY-----"));
    assert_null(strstr(key_pem, "CERTIFICATE"));

    bio = BIO_new_mem_buf(cert_pem, -1);
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(x);
    bio = BIO_new_mem_buf(key_pem, -1);
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(key);

    assert_int_equal(X509_check_private_key(x, key), 1);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(key), 256);
    assert_int_equal(X509_get_version(x), 2);
    assert_int_equal(X509_verify(x, key), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_true(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);

    names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const unsigned char *d;
        int len;

        if (gn->type == GEN_DNS) {
            d = ASN1_STRING_get0_data(gn->d.dNSName);
            seen_dns |= strcmp((const char *)d, "localhost") == 0;
        } else if (gn->type == GEN_IPADD) {
            d = ASN1_STRING_get0_data(gn->d.iPAddress);
            len = ASN1_STRING_length(gn->d.iPAddress);
            seen_v4 |= len == 4 && memcmp(d, v4, 4) == 0;
            seen_v6 |= len == 16 && memcmp(d, v6, 16) == 0;
        }
    }
    GENERAL_NAMES_free(names);
    assert_true(seen_v4);
    assert_true(seen_v6);
    assert_true(seen_dns);

    EVP_PKEY_free(key);
    X509_free(x);
    free(cert_pem);
    free(key_pem);
}

static void
test_existing_never_rewritten(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char *token_before, *cert_before, *token_after, *cert_after;

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);
    token_before = slurp(f->token);
    cert_before = slurp(f->cert);

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);
    token_after = slurp(f->token);
    cert_after = slurp(f->cert);
    assert_string_equal(token_before, token_after);
    assert_string_equal(cert_before, cert_after);

    /* An operator's own token, of another shape, is kept as it is. */
    spit(f->token, "  operator-chosen-token\n", 0640);
    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);
    free(token_after);
    token_after = slurp(f->token);
    assert_string_equal(token_after, "  operator-chosen-token\n");

    free(token_before);
    free(cert_before);
    free(token_after);
    free(cert_after);
}

static void
test_invalid_existing(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char *token;

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);

    spit(f->token, " \n", 0600);
    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(cs_credentials_read_token(f->token, &token, err,
        sizeof(err)), -EINVAL);
    token = slurp(f->token);
    assert_string_equal(token, " \n");
    free(token);

    spit(f->token, "abc\n", 0600);
    spit(f->cert, "not a pem file\n", 0600);
    err[0] = '\0';
    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, f->cert));

    /* A certificate with someone else's key. */
    {
        char other_token[600], other_cert[600], mixed[8192];
        char *cert_pem, *key_pem, *cert2, *key2;

        snprintf(other_token, sizeof(other_token), "%s/o/t", f->dir);
        snprintf(other_cert, sizeof(other_cert), "%s/o/c", f->dir);
        assert_int_equal(cs_credentials_ensure(other_token, other_cert,
            err, sizeof(err)), 0);
        unlink(f->cert);
        assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
            sizeof(err)), 0);
        assert_int_equal(cs_credentials_read_cert(f->cert, &cert_pem,
            &key_pem, err, sizeof(err)), 0);
        assert_int_equal(cs_credentials_read_cert(other_cert, &cert2,
            &key2, err, sizeof(err)), 0);
        snprintf(mixed, sizeof(mixed), "%s%s", cert_pem, key2);
        spit(f->cert, mixed, 0600);
        assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
            sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "does not match"));
        free(cert_pem);
        free(key_pem);
        free(cert2);
        free(key2);
    }
}

static void
test_unreadable_existing(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";

    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), 0);

    /* Root reads any mode, so unreadable is also shown as a directory. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(f->token, 0), 0);
        assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
            sizeof(err)), -EACCES);
        assert_non_null(strstr(err, f->token));
    }

    assert_int_equal(unlink(f->token), 0);
    assert_int_equal(mkdir(f->token, 0700), 0);
    err[0] = '\0';
    assert_int_equal(cs_credentials_ensure(f->token, f->cert, err,
        sizeof(err)), -EISDIR);
    assert_non_null(strstr(err, f->token));
}

/* Several processes starting at once end up sharing one token. */
static void
test_race_one_token(void **state)
{
    enum { N = 6 };
    fixture_t *f = *state;
    int fds[N][2];
    pid_t pids[N];
    char tokens[N][80];

    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char err[256];
            char *token;
            int ok;

            ok = cs_credentials_ensure(f->token, f->cert, err,
                sizeof(err)) == 0 &&
                cs_credentials_read_token(f->token, &token, err,
                    sizeof(err)) == 0;
            if (ok) {
                ok = write(fds[i][1], token, strlen(token)) ==
                    (ssize_t)strlen(token);
            }
            _exit(ok ? 0 : 1);
        }
        close(fds[i][1]);
    }

    for (int i = 0; i < N; i++) {
        int status;
        ssize_t n;

        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        n = read(fds[i][0], tokens[i], sizeof(tokens[i]) - 1);
        assert_int_equal(n, 64);
        tokens[i][n] = '\0';
        close(fds[i][0]);
        assert_string_equal(tokens[i], tokens[0]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_never_rewritten,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_existing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_existing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_race_one_token, setup,
            teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

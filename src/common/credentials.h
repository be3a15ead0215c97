/*
 * The IPC credentials every process of the group shares: the bearer token
 * (auth_token_file_path: 64 hex characters from the kernel's CSPRNG, mode
 * 0600) and the TLS certificate (ipc_cert_file_path: one PEM file holding a
 * self-signed certificate for 127.0.0.1, ::1 and localhost and its EC
 * P-256 private key, mode 0600).
 *
 * cs_credentials_ensure() creates whichever is absent. It is safe to call
 * from several processes at once: creation happens under an flock on a
 * lock file beside the token, each file is written to a temporary name and
 * renamed into place, and an existing file is never rewritten. The
 * supervisor calls it before starting anything; every frontend calls it
 * too, so the group also works without the supervisor.
 *
 * Functions return 0 or a negative errno and fill err on failure.
 */
#ifndef CS_CREDENTIALS_H
#define CS_CREDENTIALS_H

#include <stddef.h>

int cs_credentials_ensure(const char *token_path, const char *cert_path,
    char *err, size_t errlen);

/*
 * Read the token (surrounding whitespace trimmed) into a malloc'ed string.
 * -EINVAL when the file is empty.
 */
int cs_credentials_read_token(const char *path, char **token, char *err,
    size_t errlen);

/*
 * Read the PEM file: *cert_pem gets the certificate block(s), *key_pem the
 * private key block, both malloc'ed NUL-terminated strings, as gRPC's
 * grpc_ssl_pem_key_cert_pair wants them.
 */
int cs_credentials_read_cert(const char *path, char **cert_pem,
    char **key_pem, char *err, size_t errlen);

#endif /* CS_CREDENTIALS_H */

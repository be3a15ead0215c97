#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>

#include "bench_grpc.h"

#define BENCH_PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define BENCH_PEM_END "-----END CERTIFICATE-----"

int64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int bench_grpc_read_file(const char *path, char **out)
{
    char *buf;
    long len;
    FILE *f;
    int rc = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }

    if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) < 0)
    {
        rc = -errno;
        goto out_close;
    }

    buf = malloc((size_t) len + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out_close;
    }

    if (fread(buf, 1, (size_t) len, f) != (size_t) len) {
        free(buf);
        rc = -EIO;
        goto out_close;
    }

    buf[len] = '\0';
    *out = buf;

out_close:
    fclose(f);
    return rc;
}

/* Keep only the certificate blocks: gRPC wants roots, not the key. */
static int bench_grpc_cert_blocks(const char *pem, char **out)
{
    const char *p = pem, *b, *e;
    size_t len = 0;
    char *certs;

    certs = calloc(1, strlen(pem) + 1);
    if (certs == NULL) {
        return -ENOMEM;
    }

    while ((b = strstr(p, BENCH_PEM_BEGIN)) != NULL) {
        e = strstr(b, BENCH_PEM_END);
        if (e == NULL) {
            break;
        }
        e += strlen(BENCH_PEM_END);
        memcpy(certs + len, b, (size_t) (e - b));
        len += (size_t) (e - b);
        certs[len++] = '\n';
        p = e;
    }

    if (len == 0) {
        free(certs);
        return -ENOENT;
    }

    certs[len] = '\0';
    *out = certs;
    return 0;
}

int bench_grpc_creds(const char *path, grpc_channel_credentials **creds,
    char *err, size_t errlen)
{
    char *pem = NULL, *certs;
    int rc;

    if (path == NULL) {
        *creds = grpc_insecure_credentials_create();
        return 0;
    }

    rc = bench_grpc_read_file(path, &pem);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }

    rc = bench_grpc_cert_blocks(pem, &certs);
    free(pem);
    if (rc < 0) {
        snprintf(err, errlen, "%s: no certificate block", path);
        return rc;
    }

    *creds = grpc_ssl_credentials_create(certs, NULL, NULL, NULL);
    free(certs);
    if (*creds == NULL) {
        snprintf(err, errlen, "grpc_ssl_credentials_create failed");
        return -EINVAL;
    }

    return 0;
}

grpc_channel *bench_grpc_channel(const char *address,
    grpc_channel_credentials *creds)
{
    grpc_arg args[3];
    grpc_channel_args cargs = { .num_args = 3, .args = args };

    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *) GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[0].value.integer = 1;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *) GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    /* Retries buffer every message of a call; the agents do not retry. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *) GRPC_ARG_ENABLE_RETRIES;
    args[2].value.integer = 0;

    return grpc_channel_create(address, creds, &cargs);
}

grpc_byte_buffer *bench_grpc_pack(const ProtobufCMessage *msg)
{
    grpc_byte_buffer *bb;
    grpc_slice s;
    size_t len;

    len = protobuf_c_message_get_packed_size(msg);
    s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_slice bench_grpc_flatten(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    grpc_slice s;

    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        return grpc_empty_slice();
    }

    s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return s;
}

static gpr_timespec bench_grpc_deadline(int timeout_ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int bench_grpc_unary(grpc_channel *ch, const char *method,
    grpc_metadata *md, size_t nmd, const ProtobufCMessage *req,
    grpc_slice *resp, int timeout_ms, char *err, size_t errlen)
{
    grpc_metadata_array init_md, trailing_md;
    grpc_byte_buffer *send, *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_completion_queue *cq;
    grpc_op ops[6];
    grpc_call *call;
    grpc_event ev;
    int rc = 0;

    send = bench_grpc_pack(req);
    if (send == NULL) {
        return -ENOMEM;
    }

    cq = grpc_completion_queue_create_for_next(NULL);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string(method), NULL,
        bench_grpc_deadline(timeout_ms), NULL);

    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trailing_md);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
        snprintf(err, errlen, "%s: grpc_call_start_batch failed", method);
        rc = -EINVAL;
        goto out_call;
    }

    /* The call's deadline bounds this wait: the batch always completes. */
    ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
        NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
        snprintf(err, errlen, "%s: call failed", method);
        rc = -EIO;
        goto out_call;
    }

    if (status == GRPC_STATUS_DEADLINE_EXCEEDED) {
        snprintf(err, errlen, "%s: no answer within %d ms", method,
            timeout_ms);
        rc = -ETIMEDOUT;
        goto out_call;
    }

    if (status != GRPC_STATUS_OK || recv == NULL) {
        snprintf(err, errlen, "%s: status %d: %.*s", method, (int) status,
            (int) GRPC_SLICE_LENGTH(details),
            (const char *) GRPC_SLICE_START_PTR(details));
        rc = -EPROTO;
        goto out_call;
    }

    *resp = bench_grpc_flatten(recv);

out_call:
    if (recv != NULL) {
        grpc_byte_buffer_destroy(recv);
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq,
        gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
    {
    }
    grpc_completion_queue_destroy(cq);
    grpc_byte_buffer_destroy(send);
    return rc;
}

/*
 * gRPC client plumbing of the load generator: channels that each own their
 * TCP connection (as separate agent processes would), protobuf-c messages
 * in and out of byte buffers, and a blocking unary call for the set-up
 * steps that are not timed as a fleet.
 *
 * Functions return 0 or a negative errno unless said otherwise.
 */
#ifndef BENCH_GRPC_H
#define BENCH_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <protobuf-c/protobuf-c.h>

/* CLOCK_MONOTONIC in nanoseconds: every time the benchmark records. */
int64_t bench_now_ns(void);

/*
 * TLS credentials trusting the certificate blocks of the PEM file at path
 * (a private key in the same file is ignored), or plaintext credentials
 * when path is NULL.
 */
int bench_grpc_creds(const char *path, grpc_channel_credentials **creds,
    char *err, size_t errlen);

/*
 * A channel to address (host:port) with a subchannel pool of its own, so
 * that no two channels share a connection; NULL on failure.
 */
grpc_channel *bench_grpc_channel(const char *address,
    grpc_channel_credentials *creds);

/* Pack msg into a new byte buffer; NULL on ENOMEM. */
grpc_byte_buffer *bench_grpc_pack(const ProtobufCMessage *msg);

/*
 * The bytes of a received buffer as one slice (grpc_slice_unref it); the
 * buffer itself is left to the caller.
 */
grpc_slice bench_grpc_flatten(grpc_byte_buffer *bb);

/*
 * Call a unary method and wait at most timeout_ms. md holds nmd request
 * metadata entries. On an OK status *resp gets the response slice
 * (grpc_slice_unref it); any other status gives -EPROTO with the code and
 * message in err, and a timeout gives -ETIMEDOUT.
 */
int bench_grpc_unary(grpc_channel *ch, const char *method,
    grpc_metadata *md, size_t nmd, const ProtobufCMessage *req,
    grpc_slice *resp, int timeout_ms, char *err, size_t errlen);

#endif /* BENCH_GRPC_H */

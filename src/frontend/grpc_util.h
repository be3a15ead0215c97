/*
 * Small helpers over gRPC's C core shared by the frontend and
 * config-stream-client: metadata lookup, byte buffers from and to flat
 * bytes, and the protobuf-c glue around them.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef CS_GRPC_UTIL_H
#define CS_GRPC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

/*
 * The first value of key (lower case, as HTTP/2 carries it) in md. Returns
 * 1 and sets *val (not NUL-terminated, valid while md lives) and *len
 * when present, 0 when absent.
 */
int cs_grpc_md_get(const grpc_metadata_array *md, const char *key,
    const char **val, size_t *len);

/* Copy a received byte buffer into one malloc'ed block (*buf, *len). */
int cs_grpc_bb_flatten(grpc_byte_buffer *bb, uint8_t **buf, size_t *len);

/*
 * A byte buffer holding a copy of buf; NULL on ENOMEM. The caller
 * destroys it with grpc_byte_buffer_destroy().
 */
grpc_byte_buffer *cs_grpc_bb_from_copy(const void *buf, size_t len);

/* A byte buffer holding msg packed; NULL on ENOMEM. */
grpc_byte_buffer *cs_grpc_bb_pack(const ProtobufCMessage *msg);

/* Unpack bb as desc; NULL when it does not decode. */
ProtobufCMessage *cs_grpc_bb_unpack(grpc_byte_buffer *bb,
    const ProtobufCMessageDescriptor *desc);

/* The name of a status code ("UNAVAILABLE"), for tools and logs. */
const char *cs_grpc_status_name(grpc_status_code code);

/*
 * Turn off abseil's lock-order checking inside gRPC (on in Debian's
 * build of abseil, and costly on every lock). Call before grpc_init().
 */
void cs_grpc_lock_checks_off(void);

#endif /* CS_GRPC_UTIL_H */

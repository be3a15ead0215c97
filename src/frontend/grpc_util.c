#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "grpc_util.h"

int
cs_grpc_md_get(const grpc_metadata_array *md, const char *key,
    const char **val, size_t *len)
{
    size_t i;

    for (i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0) {
            *val = (const char *) GRPC_SLICE_START_PTR(md->metadata[i].value);
            *len = GRPC_SLICE_LENGTH(md->metadata[i].value);
            return 1;
        }
    }

    return 0;
}

int
cs_grpc_bb_flatten(grpc_byte_buffer *bb, uint8_t **buf, size_t *len)
{
    grpc_byte_buffer_reader reader;
    grpc_slice all;
    size_t n;

    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        return -EINVAL;
    }

    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);

    n = GRPC_SLICE_LENGTH(all);
    *buf = malloc(n ? n : 1);
    if (*buf == NULL) {
        grpc_slice_unref(all);
        return -ENOMEM;
    }

    memcpy(*buf, GRPC_SLICE_START_PTR(all), n);
    *len = n;
    grpc_slice_unref(all);
    return 0;
}

grpc_byte_buffer *
cs_grpc_bb_from_copy(const void *buf, size_t len)
{
    grpc_slice slice;
    grpc_byte_buffer *bb;

    slice = grpc_slice_from_copied_buffer(buf, len);
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

grpc_byte_buffer *
cs_grpc_bb_pack(const ProtobufCMessage *msg)
{
    grpc_slice slice;
    grpc_byte_buffer *bb;
    size_t len;

    len = protobuf_c_message_get_packed_size(msg);
    slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

ProtobufCMessage *
cs_grpc_bb_unpack(grpc_byte_buffer *bb,
    const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *msg;
    uint8_t *buf;
    size_t len;

    if (bb == NULL || cs_grpc_bb_flatten(bb, &buf, &len) < 0) {
        return NULL;
    }

    msg = protobuf_c_message_unpack(desc, NULL, len, buf);
    free(buf);
    return msg;
}

const char *
cs_grpc_status_name(grpc_status_code code)
{
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
        "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"
    };

    if ((unsigned) code < sizeof(names) / sizeof(names[0])) {
        return names[code];
    }

    return "UNKNOWN";
}

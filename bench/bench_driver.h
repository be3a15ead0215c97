/*
 * The change driver: makes one configuration change at a time and reports
 * the sequence id it got, so that receive times can be matched to it.
 *
 *   configstream  a runtime set (source agent-runtime) of one key through
 *                 the resolver's control socket (configstream.control.v1,
 *                 one request per SOCK_SEQPACKET datagram); the id is the
 *                 head sequence id the resolver answers with;
 *   etcd          a Put of one key; the id is the revision of the answer.
 *
 * Every change writes a value the key never had before, so each one is a
 * real change even in a store kept from an earlier run.
 *
 * Functions return 0 or a negative errno and fill err on failure.
 */
#ifndef BENCH_DRIVER_H
#define BENCH_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

typedef struct bench_driver bench_driver_t;

int bench_driver_open_control(bench_driver_t **d, const char *socket_path,
    const char *key, char *err, size_t errlen);

/* ch stays the caller's; it must outlive the driver. */
int bench_driver_open_etcd(bench_driver_t **d, grpc_channel *ch,
    const char *key, char *err, size_t errlen);

/* Make one change and wait for it to be committed. */
int bench_driver_change(bench_driver_t *d, int64_t *seq, char *err,
    size_t errlen);

void bench_driver_close(bench_driver_t *d);

#endif /* BENCH_DRIVER_H */

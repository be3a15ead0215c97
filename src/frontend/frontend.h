/*
 * Internals of configstream-frontend shared by its files: the server
 * (main.c), the call state machine (call.c) and the subscribers with their
 * notifier thread (stream.c).
 *
 * Threads: the completion-queue thread (main) owns call lifecycles; the
 * notifier thread sleeps on the change word and feeds subscribers. Every
 * subscriber field and every fe_call_t.pending count is touched only under
 * fe_server_t.lock. gRPC batches may be started from either thread.
 */
#ifndef CS_FRONTEND_H
#define CS_FRONTEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "config.h"
#include "datadog/remoteagent/v1/remoteagent.pb-c.h"
#include "shm.h"
#include "store.h"

#define FE_SUBSYS "frontend"

typedef struct fe_call fe_call_t;
typedef struct fe_server fe_server_t;
typedef struct fe_broker fe_broker_t;

typedef enum {
    FE_OP_NEW = 0,
    FE_OP_RECV,
    FE_OP_SEND,
    FE_OP_STATUS,
    FE_OP_CLOSE,
    FE_OP_COUNT
} fe_op_t;

typedef struct {
    fe_call_t *call;
    fe_op_t op;
} fe_tag_t;

/* One queued update: a reference on the shared encoded bytes. */
typedef struct {
    uint64_t seq;
    grpc_slice bytes;
} fe_entry_t;

struct fe_call {
    fe_server_t *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *send_bb;
    grpc_slice status_details;
    int method;
    fe_tag_t tags[FE_OP_COUNT];
    int pending;                /* batches in flight */
    int close_cancelled;
    int closed;                 /* RECV_CLOSE_ON_SERVER completed */
    int ended;                  /* a final status is on its way */
    int md_sent;

    /* config stream subscribers */
    int subscribed;
    fe_call_t *prev, *next;
    char name[257];
    char session_id[40];
    uint64_t next_seq;          /* first update id not yet queued */
    int resync;                 /* send a snapshot next */
    int joined;                 /* the first snapshot went out */
    int sending;
    fe_entry_t *queue;
    uint32_t qhead, qlen;
};

struct fe_server {
    cs_config_t cfg;
    char *token;
    grpc_server *server;
    grpc_completion_queue *cq;
    fe_tag_t shutdown_tag;

    cs_store_t *store;
    cs_shm_t *shm;
    cs_shm_worker_stats_t *stats;
    cs_shm_worker_stats_t local_stats;
    uint32_t worker_idx;
    int worker_claimed;
    fe_broker_t *broker;        /* used by the completion-queue thread */
    fe_broker_t *keepalive;     /* used by the notifier thread */

    atomic_int ready;
    atomic_int stopping;
    atomic_int keepalive_due;   /* a stream joined: report it now */
    atomic_int rescan;          /* a snapshot went out behind the head */
    atomic_int sessions_due;    /* a stream joined: check its session */
    pthread_t notifier;
    int notifier_started;

    pthread_mutex_t lock;
    fe_call_t *subs;
    uint32_t nsubs;

    /* The last snapshot built, under lock; see fe_snapshot_get(). */
    int snap_valid;
    uint8_t snap_epoch[16];
    uint64_t snap_head;
    char snap_origin[CS_STORE_ORIGIN_MAX];
    grpc_slice snap_bytes;
};

/*
 * call.c. fe_call_request() asks the server for the next call;
 * fe_call_event() handles one completion (completion-queue thread only);
 * fe_call_end() sends a final status, with srv->lock held.
 */
int fe_call_request(fe_server_t *srv);
void fe_call_event(fe_tag_t *tag, int ok);
void fe_call_end(fe_call_t *c, grpc_status_code code, const char *msg);

/*
 * stream.c. join, leave and send_done run with srv->lock held: a call
 * becomes a subscriber (snapshot first), stops being one (its close
 * completed), or finished a send. fe_stream_end_all() takes the lock.
 */
void fe_stream_join(fe_call_t *c);
void fe_stream_leave(fe_call_t *c);
void fe_stream_send_done(fe_call_t *c, int ok);
void fe_stream_end_all(fe_server_t *srv, grpc_status_code code,
    const char *msg);
void fe_stream_fini(fe_server_t *srv);
int fe_notifier_start(fe_server_t *srv);
void fe_notifier_stop(fe_server_t *srv);

/*
 * broker.c: the registry calls, forwarded to the broker. Each returns 0
 * with *code set to the broker's answer (GRPC_STATUS_OK or an error with
 * msg), or a negative errno when the broker cannot be reached.
 */
int fe_broker_open(fe_server_t *srv, fe_broker_t **b);
void fe_broker_close(fe_broker_t *b);
int fe_broker_register(fe_broker_t *b,
    const Datadog__Remoteagent__V1__RegisterRemoteAgentRequest *req,
    grpc_status_code *code, char *msg, size_t msglen, char *session_id,
    size_t idlen, uint32_t *refresh_secs);
int fe_broker_refresh(fe_broker_t *b, const char *session_id,
    grpc_status_code *code, char *msg, size_t msglen);
typedef char fe_session_id_t[CS_SESSION_ID_LEN + 1];

void fe_broker_keepalive(fe_broker_t *b, fe_session_id_t *ids, uint32_t n);

enum {
    FE_M_UNKNOWN = 0,
    FE_M_STREAM,
    FE_M_REGISTER,
    FE_M_REFRESH,
    FE_M_HEALTH
};

#endif /* CS_FRONTEND_H */

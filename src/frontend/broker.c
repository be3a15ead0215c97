/*
 * The registry calls of the frontend, forwarded to the broker, which owns
 * the session table. Each thread that talks to the broker has its own
 * client, as broker_client.h requires.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_client.h"
#include "frontend.h"

#define FE_BROKER_TIMEOUT_MS 1000

struct fe_broker {
    cs_broker_client_t *bc;
};

int
fe_broker_open(fe_server_t *srv, fe_broker_t **b)
{
    int rc;

    *b = calloc(1, sizeof(**b));
    if (*b == NULL) {
        return -ENOMEM;
    }

    rc = cs_broker_client_new(&(*b)->bc, srv->cfg.broker_socket);
    if (rc < 0) {
        free(*b);
        *b = NULL;
    }

    return rc;
}

void
fe_broker_close(fe_broker_t *b)
{
    if (b == NULL) {
        return;
    }

    cs_broker_client_free(b->bc);
    free(b);
}

int
fe_broker_register(fe_broker_t *b,
    const Datadog__Remoteagent__V1__RegisterRemoteAgentRequest *req,
    grpc_status_code *code, char *msg, size_t msglen, char *session_id,
    size_t idlen, uint32_t *refresh_secs)
{
    char id[CS_SESSION_ID_LEN + 1] = "";
    cs_broker_reply_t reply;
    cs_broker_agent_t agent;
    int rc;

    agent.pid = req->pid;
    agent.flavor = req->flavor;
    agent.display_name = req->display_name;
    agent.api_endpoint_uri = req->api_endpoint_uri;
    agent.services = (const char *const *) req->services;
    agent.n_services = req->n_services;

    rc = cs_broker_client_register(b->bc, &agent, FE_BROKER_TIMEOUT_MS,
        &reply, id, refresh_secs);
    if (rc < 0) {
        return rc;
    }

    *code = (grpc_status_code) reply.code;
    snprintf(msg, msglen, "%s", reply.message);
    snprintf(session_id, idlen, "%s", id);
    return 0;
}

int
fe_broker_refresh(fe_broker_t *b, const char *session_id,
    grpc_status_code *code, char *msg, size_t msglen)
{
    cs_broker_reply_t reply;
    int rc;

    rc = cs_broker_client_refresh(b->bc, session_id, FE_BROKER_TIMEOUT_MS,
        &reply);
    if (rc < 0) {
        return rc;
    }

    *code = (grpc_status_code) reply.code;
    snprintf(msg, msglen, "%s", reply.message);
    return 0;
}

static int
fe_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(fe_session_id_t));
}

/*
 * ids may repeat (several streams of one session); the broker gets one
 * count per session. Sorting keeps this O(n log n) for large fleets.
 */
void
fe_broker_keepalive(fe_broker_t *b, fe_session_id_t *ids, uint32_t n)
{
    cs_broker_stream_count_t *streams;
    cs_broker_reply_t reply;
    uint32_t i, m = 0;

    streams = calloc(n ? n : 1, sizeof(*streams));
    if (streams == NULL) {
        return;
    }

    if (n > 1) {
        qsort(ids, n, sizeof(*ids), fe_id_cmp);
    }
    for (i = 0; i < n; i++) {
        if (m == 0 || strcmp(streams[m - 1].session_id, ids[i]) != 0) {
            streams[m++].session_id = ids[i];
        }
        streams[m - 1].open_streams++;
    }

    cs_broker_client_keepalive(b->bc, getpid(), streams, m,
        FE_BROKER_TIMEOUT_MS, &reply);
    free(streams);
}

/*
 * configstream-frontend: one gRPC server process of the config stream.
 * Several run on the same address (SO_REUSEPORT); each reads the store and
 * the shared-memory segment and never writes the store.
 *
 * The main thread runs the completion queue; the notifier thread
 * (stream.c) feeds subscribers. Signals only set a flag that the
 * completion-queue loop, which wakes at least every FE_TICK_MS, acts on.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "credentials.h"
#include "frontend.h"
#include "grpc_util.h"
#include "log.h"

#define FE_TICK_MS          200
#define FE_STOP_GRACE_MS    3000
#define FE_MAX_REQUEST      (64 * 1024)

/*
 * Largest TLS record the server writes. Each connection keeps a buffer of
 * this size for protecting outgoing data; updates are a few hundred bytes,
 * so 4 KiB instead of gRPC's 16 KiB saves about 28 KB per subscriber
 * (measured at 1000) without slowing a snapshot down measurably.
 */
#define FE_TLS_FRAME        4096

static volatile sig_atomic_t fe_signalled;

static void
fe_on_signal(int sig)
{
    fe_signalled = sig;
}

/*
 * gRPC's own messages go through our log format. What it reports at its
 * error level here is mostly a peer's fault (a failed TLS handshake), so
 * it is logged at info, as peer-caused network errors are.
 */
static void
fe_grpc_log(gpr_log_func_args *args)
{
    cs_log(args->severity == GPR_LOG_SEVERITY_ERROR ? CS_LOG_INFO
        : CS_LOG_DEBUG, "grpc", "%s", args->message);
}

static void
fe_usage(FILE *out)
{
    fprintf(out,
        "usage: configstream-frontend -c FILE [--schema FILE]\n"
        "\n"
        "Serve the config stream and the remote agent registry over gRPC.\n"
        "\n"
        "  -c, --config FILE   datadog.yaml with the daemon's settings\n"
        "      --schema FILE   settings schema (default: embedded)\n"
        "  -h, --help          this help\n");
}

static int
fe_parse_args(int argc, char **argv, const char **config,
    const char **schema)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "schema", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *config = optarg;
            break;
        case 's':
            *schema = optarg;
            break;
        case 'h':
            fe_usage(stdout);
            exit(0);
        default:
            fe_usage(stderr);
            return -EINVAL;
        }
    }

    if (optind != argc) {
        fe_usage(stderr);
        return -EINVAL;
    }

    return 0;
}

static grpc_server_credentials *
fe_server_creds(fe_server_t *srv)
{
    grpc_ssl_pem_key_cert_pair pair;
    grpc_server_credentials *creds;
    char *cert, *key, err[256];

    if (!srv->cfg.tls_enabled) {
        cs_log_warn(FE_SUBSYS, "tls is disabled: serving plaintext");
        return grpc_insecure_server_credentials_create();
    }

    if (cs_credentials_read_cert(srv->cfg.ipc_cert_file_path, &cert, &key,
            err, sizeof(err)) < 0)
    {
        cs_log_error(FE_SUBSYS, "read ipc certificate: %s", err);
        return NULL;
    }

    pair.cert_chain = cert;
    pair.private_key = key;
    creds = grpc_ssl_server_credentials_create_ex(NULL, &pair, 1,
        GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    free(cert);
    free(key);
    return creds;
}

static int
fe_server_listen(fe_server_t *srv)
{
    grpc_arg args[3];
    grpc_channel_args chargs;
    grpc_server_credentials *creds;
    char addr[512];
    int port;

    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = FE_MAX_REQUEST;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[1].value.integer = 1;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_TSI_MAX_FRAME_SIZE;
    args[2].value.integer = FE_TLS_FRAME;
    chargs.num_args = 3;
    chargs.args = args;

    srv->cq = grpc_completion_queue_create_for_next(NULL);
    srv->server = grpc_server_create(&chargs, NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);

    creds = fe_server_creds(srv);
    if (creds == NULL) {
        return -EINVAL;
    }

    snprintf(addr, sizeof(addr), strchr(srv->cfg.cmd_host, ':') != NULL
        ? "[%s]:%d" : "%s:%d", srv->cfg.cmd_host, srv->cfg.cmd_port);
    port = grpc_server_add_http2_port(srv->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        cs_log_error(FE_SUBSYS, "grpc_server_add_http2_port %s: cannot "
            "listen", addr);
        return -EADDRINUSE;
    }

    grpc_server_start(srv->server);
    cs_log_notice(FE_SUBSYS, "listening on %s (%s)", addr,
        srv->cfg.tls_enabled ? "tls" : "plaintext");
    return 0;
}

static gpr_timespec
fe_deadline(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static void
fe_server_stop(fe_server_t *srv)
{
    cs_log_notice(FE_SUBSYS, "signal %d: shutting down", (int) fe_signalled);
    fe_notifier_stop(srv);
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    fe_stream_end_all(srv, GRPC_STATUS_UNAVAILABLE, "server shutting down");
}

static void
fe_server_run(fe_server_t *srv)
{
    gpr_timespec grace = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    grpc_event ev;
    int cancelled = 0;

    for (;;) {
        ev = grpc_completion_queue_next(srv->cq, fe_deadline(FE_TICK_MS),
            NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }

        if (ev.type == GRPC_OP_COMPLETE) {
            if (ev.tag == &srv->shutdown_tag) {
                grpc_completion_queue_shutdown(srv->cq);
            } else {
                fe_call_event(ev.tag, ev.success);
            }
        }

        if (fe_signalled && !atomic_load(&srv->stopping)) {
            fe_server_stop(srv);
            grace = fe_deadline(FE_STOP_GRACE_MS);
        }

        if (!cancelled && gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC),
                grace) > 0)
        {
            grpc_server_cancel_all_calls(srv->server);
            cancelled = 1;
        }
    }
}

static int
fe_server_init(fe_server_t *srv, const char *config, const char *schema)
{
    char err[512];
    int rc;

    rc = cs_config_load(&srv->cfg, config, schema, err, sizeof(err));
    if (rc < 0) {
        cs_log_error("config", "%s", err);
        return CS_EXIT_FATAL_CONFIG;
    }
    cs_log_set_level(srv->cfg.log_level);

    if (srv->cfg.queue_size == 0) {
        srv->cfg.queue_size = 64;
    }

    rc = cs_credentials_ensure(srv->cfg.auth_token_file_path,
        srv->cfg.ipc_cert_file_path, err, sizeof(err));
    if (rc == 0) {
        rc = cs_credentials_read_token(srv->cfg.auth_token_file_path,
            &srv->token, err, sizeof(err));
    }
    if (rc < 0) {
        cs_log_error(FE_SUBSYS, "ipc credentials: %s", err);
        return CS_EXIT_FATAL_CONFIG;
    }

    if (fe_broker_open(srv, &srv->broker) < 0
        || fe_broker_open(srv, &srv->keepalive) < 0)
    {
        cs_log_error(FE_SUBSYS, "broker client: out of memory");
        return 1;
    }

    return 0;
}

static void
fe_server_fini(fe_server_t *srv)
{
    fe_notifier_stop(srv);
    if (srv->server != NULL) {
        grpc_server_destroy(srv->server);
    }
    fe_stream_fini(srv);
    if (srv->cq != NULL) {
        grpc_completion_queue_destroy(srv->cq);
    }
    if (srv->worker_claimed) {
        cs_shm_worker_release(srv->shm, srv->worker_idx);
    }
    if (srv->store != NULL) {
        cs_store_close(srv->store);
    }
    if (srv->shm != NULL) {
        cs_shm_detach(srv->shm);
    }
    fe_broker_close(srv->broker);
    fe_broker_close(srv->keepalive);
    free(srv->token);
    cs_config_free(&srv->cfg);
}

int
main(int argc, char **argv)
{
    const char *config = NULL, *schema = NULL;
    struct sigaction sa;
    fe_server_t srv;
    int rc;

    cs_log_init("configstream-frontend");

    if (fe_parse_args(argc, argv, &config, &schema) < 0) {
        return 2;
    }

    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.lock, NULL);

    rc = fe_server_init(&srv, config, schema);
    if (rc != 0) {
        return rc;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fe_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /*
     * A frontend has nothing to reload (it reads the store live), and a
     * hangup sent to the whole group (a closed terminal, a supervisor's
     * group signal) must not drop its streams.
     */
    signal(SIGHUP, SIG_IGN);

    gpr_set_log_function(fe_grpc_log);
    cs_grpc_lock_checks_off();
    grpc_init();

    rc = fe_server_listen(&srv);
    if (rc < 0) {
        rc = rc == -EINVAL ? CS_EXIT_FATAL_CONFIG : 1;
        goto out_fini;
    }

    if (fe_notifier_start(&srv) < 0 || fe_call_request(&srv) < 0) {
        cs_log_error(FE_SUBSYS, "cannot start serving");
        rc = 1;
        goto out_fini;
    }

    fe_server_run(&srv);
    cs_log_notice(FE_SUBSYS, "stopped");
    rc = 0;

out_fini:
    fe_server_fini(&srv);
    grpc_shutdown_blocking();
    return rc;
}

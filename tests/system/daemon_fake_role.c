/*
 * A stand-in for the broker, the resolver and a frontend, so that
 * configstreamd's supervision can be tested on its own. It plays the role
 * named by argv[0] (configstreamd passes the role name there), reads the
 * same -c FILE, and does the least that configstreamd waits for:
 *
 *   configstream-broker    creates the shared-memory segment
 *   configstream-resolver  creates the store file and publishes head 1
 *   configstream-frontend  listens on cmd_host:cmd_port (SO_REUSEPORT)
 *
 * Each start, SIGHUP and SIGTERM is appended as "<event> <role> <pid>" to
 * $CS_FAKE_EVENTS. When $CS_FAKE_FATAL names the role, it exits with
 * CS_EXIT_FATAL_CONFIG at once; when $CS_FAKE_CRASH does, with status 1;
 * when $CS_FAKE_STUBBORN does, it ignores SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "shm.h"

static const char *fake_role;

static void
fake_event(const char *what)
{
    const char *path = getenv("CS_FAKE_EVENTS");
    char line[256];
    int fd, n;

    if (path == NULL) {
        return;
    }
    n = snprintf(line, sizeof(line), "%s %s %d\n", what, fake_role,
        (int)getpid());
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}

static int
fake_broker(const cs_config_t *cfg, cs_shm_t **shm)
{
    cs_shm_params_t params = { .session_capacity = 64,
        .worker_capacity = 8 };
    char err[256];

    if (cs_shm_create_or_attach(shm, cfg->shm_path, &params, err,
            sizeof(err)) < 0) {
        fprintf(stderr, "fake broker: %s\n", err);
        return -1;
    }
    atomic_store(&cs_shm_header(*shm)->broker_pid, (int32_t)getpid());
    return 0;
}

static int
fake_resolver(const cs_config_t *cfg, cs_shm_t **shm)
{
    char err[256];
    int fd;

    for (int i = 0; cs_shm_attach(shm, cfg->shm_path, err,
            sizeof(err)) < 0; i++) {
        if (i > 100) {
            fprintf(stderr, "fake resolver: %s\n", err);
            return -1;
        }
        usleep(50000);
    }

    fd = open(cfg->store_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fake resolver: open store");
        return -1;
    }
    close(fd);
    cs_shm_publish_head(*shm, cs_shm_head(*shm) + 1);
    return 0;
}

static int
fake_frontend(const cs_config_t *cfg)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV }, *res;
    char port[16];
    int fd, one = 1;

    snprintf(port, sizeof(port), "%d", cfg->cmd_port);
    if (getaddrinfo(cfg->cmd_host, port, &hints, &res) != 0) {
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, 16) != 0) {
        perror("fake frontend: bind");
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *config = NULL, *schema = NULL, *fatal;
    cs_config_t cfg;
    cs_shm_t *shm = NULL;
    char err[512];
    sigset_t set;
    int sig, rc = 0, stubborn;

    fake_role = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc) {
            schema = argv[++i];
        }
    }

    fake_event("start");
    fatal = getenv("CS_FAKE_FATAL");
    if (fatal != NULL && strcmp(fatal, fake_role) == 0) {
        return CS_EXIT_FATAL_CONFIG;
    }
    fatal = getenv("CS_FAKE_CRASH");
    if (fatal != NULL && strcmp(fatal, fake_role) == 0) {
        return 1;
    }
    fatal = getenv("CS_FAKE_STUBBORN");
    stubborn = fatal != NULL && strcmp(fatal, fake_role) == 0;

    if (cs_config_load(&cfg, config, schema, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", fake_role, err);
        return CS_EXIT_FATAL_CONFIG;
    }

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);

    if (strcmp(fake_role, "configstream-broker") == 0) {
        rc = fake_broker(&cfg, &shm);
    } else if (strcmp(fake_role, "configstream-resolver") == 0) {
        rc = fake_resolver(&cfg, &shm);
    } else if (strcmp(fake_role, "configstream-frontend") == 0) {
        rc = fake_frontend(&cfg);
    }
    if (rc < 0) {
        return 1;
    }

    for (;;) {
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            fake_event("hup");
            continue;
        }
        fake_event("stop");
        if (stubborn) {
            continue;
        }
        break;
    }

    if (shm != NULL) {
        cs_shm_detach(shm);
    }
    cs_config_free(&cfg);
    return 0;
}

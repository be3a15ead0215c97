/*
 * The process table of configstreamd and its state machine.
 *
 * Children are started in their own process group so that a Ctrl-C on the
 * terminal reaches configstreamd alone, which then stops them in order
 * (frontends before the resolver before the broker). Each child also asks
 * the kernel for SIGTERM when configstreamd dies, so no group outlives a
 * supervisor killed with SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proctable.h"

int64_t
cs_sup_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
cs_sup_state_name(cs_sup_state_t state)
{
    switch (state) {
    case CS_CHILD_IDLE:
        return "idle";
    case CS_CHILD_RUNNING:
        return "running";
    case CS_CHILD_BACKOFF:
        return "backoff";
    case CS_CHILD_STOPPING:
        return "stopping";
    case CS_CHILD_STOPPED:
        return "stopped";
    case CS_CHILD_FATAL:
        return "fatal";
    }
    return "unknown";
}

const char *
cs_sup_signal_name(int sig)
{
    const char *name = sigabbrev_np(sig);

    return name != NULL ? name : "?";
}

int64_t
cs_sup_backoff_next(int64_t prev_ms)
{
    int64_t next = prev_ms * 2;

    if (next < CS_SUP_BACKOFF_MIN_MS) {
        return CS_SUP_BACKOFF_MIN_MS;
    }
    return next > CS_SUP_BACKOFF_MAX_MS ? CS_SUP_BACKOFF_MAX_MS : next;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void __attribute__((noreturn))
cs_sup_child_exec(const cs_sup_child_t *c, char *const *args, pid_t parent)
{
    char *argv[16];
    sigset_t none;
    int n = 0;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        signal(sig, SIG_DFL);
    }

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(1);
    }

    /* The kernel names the process after the file; argv[0] names it
     * after its role for ps and for the child's own log lines. */
    argv[n++] = (char *)c->name;
    for (int i = 0; args[i] != NULL && n < 15; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    execv(c->path, argv);
    _exit(127);
}

int
cs_sup_child_spawn(cs_sup_table_t *t, cs_sup_child_t *c, int64_t now)
{
    pid_t parent = getpid();
    pid_t pid;
    int rc;

    pid = fork();
    if (pid < 0) {
        rc = -errno;
        cs_log_error("proc", "fork for %s: %s", c->name, strerror(errno));
        return rc;
    }
    if (pid == 0) {
        cs_sup_child_exec(c, t->args, parent);
    }

    /* Also from the parent, so a signal sent right after fork reaches
     * the group it will be in. */
    (void)setpgid(pid, pid);

    if (c->state == CS_CHILD_BACKOFF) {
        c->restarts++;
    }
    c->pid = pid;
    c->state = CS_CHILD_RUNNING;
    c->started_ms = now;
    cs_log_notice("proc", "started %s pid %d (restarts %u)", c->name,
        (int)pid, c->restarts);
    cs_sup_table_write(t);
    return 0;
}

static cs_sup_child_t *
cs_sup_table_find(cs_sup_table_t *t, pid_t pid)
{
    for (int i = 0; i < t->count; i++) {
        if (t->rows[i].pid == pid) {
            return &t->rows[i];
        }
    }
    return NULL;
}

static void
cs_sup_child_log_exit(const cs_sup_child_t *c, pid_t pid, int status)
{
    if (WIFSIGNALED(status)) {
        cs_log_notice("proc", "%s pid %d killed by signal %d (SIG%s)",
            c->name, (int)pid, WTERMSIG(status),
            cs_sup_signal_name(WTERMSIG(status)));
    } else {
        cs_log_notice("proc", "%s pid %d exited with code %d", c->name,
            (int)pid, WEXITSTATUS(status));
    }
}

static void
cs_sup_child_exited(cs_sup_child_t *c, int status, int64_t now, int *fatal)
{
    pid_t pid = c->pid;

    cs_sup_child_log_exit(c, pid, status);
    c->pid = 0;
    c->last_status = status;

    if (c->state == CS_CHILD_STOPPING) {
        c->state = CS_CHILD_STOPPED;
        return;
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == CS_EXIT_FATAL_CONFIG) {
        cs_log_error("proc",
            "%s pid %d cannot run with this configuration, not respawning it",
            c->name, (int)pid);
        c->state = CS_CHILD_FATAL;
        *fatal = 1;
        return;
    }

    /* A child that stayed up long enough starts the sequence afresh. */
    if (now - c->started_ms >= CS_SUP_STABLE_MS) {
        c->backoff_ms = CS_SUP_BACKOFF_MIN_MS;
    }
    c->respawn_at_ms = now + c->backoff_ms;
    c->state = CS_CHILD_BACKOFF;
    cs_log_notice("proc", "respawning %s in %lld ms", c->name,
        (long long)c->backoff_ms);
    c->backoff_ms = cs_sup_backoff_next(c->backoff_ms);
}

int
cs_sup_table_reap(cs_sup_table_t *t, int64_t now, int *fatal)
{
    int changed = 0;

    for (;;) {
        cs_sup_child_t *c;
        int status;
        pid_t pid;

        pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) {
            continue;
        }
        if (pid <= 0) {
            break;
        }

        c = cs_sup_table_find(t, pid);
        if (c == NULL) {
            continue;
        }
        cs_sup_child_exited(c, status, now, fatal);
        changed++;
    }

    if (changed > 0) {
        cs_sup_table_write(t);
    }
    return changed;
}

void
cs_sup_table_respawn(cs_sup_table_t *t, int64_t now, int64_t *next_ms)
{
    *next_ms = -1;

    for (int i = 0; i < t->count; i++) {
        cs_sup_child_t *c = &t->rows[i];

        if (c->state != CS_CHILD_BACKOFF) {
            continue;
        }
        if (c->respawn_at_ms <= now &&
            cs_sup_child_spawn(t, c, now) == 0) {
            continue;
        }
        if (c->respawn_at_ms <= now) {
            /* fork failed: try again after another back-off */
            c->respawn_at_ms = now + c->backoff_ms;
            c->backoff_ms = cs_sup_backoff_next(c->backoff_ms);
        }
        if (*next_ms < 0 || c->respawn_at_ms < *next_ms) {
            *next_ms = c->respawn_at_ms;
        }
    }
}

int
cs_sup_table_signal(cs_sup_table_t *t, cs_sup_role_t role, int sig)
{
    int sent = 0;

    for (int i = 0; i < t->count; i++) {
        cs_sup_child_t *c = &t->rows[i];

        if (c->role == role && c->pid > 0 && kill(c->pid, sig) == 0) {
            sent++;
        }
    }
    return sent;
}

int
cs_sup_table_stop(cs_sup_table_t *t, cs_sup_role_t role, int sig)
{
    int alive = 0;

    for (int i = 0; i < t->count; i++) {
        cs_sup_child_t *c = &t->rows[i];

        if (c->role != role) {
            continue;
        }
        if (c->state == CS_CHILD_IDLE || c->state == CS_CHILD_BACKOFF) {
            c->state = CS_CHILD_STOPPED;
            continue;
        }
        if (c->pid <= 0) {
            continue;
        }

        c->state = CS_CHILD_STOPPING;
        (void)kill(c->pid, sig);
        alive++;
    }

    cs_sup_table_write(t);
    return alive;
}

int
cs_sup_table_alive(const cs_sup_table_t *t, cs_sup_role_t role)
{
    int alive = 0;

    for (int i = 0; i < t->count; i++) {
        if (t->rows[i].role == role && t->rows[i].pid > 0) {
            alive++;
        }
    }
    return alive;
}

/*
 * One line per row: role, index, pid, state, restarts and the last start
 * as seconds since the epoch, for operators and for tests to read.
 */
void
cs_sup_table_write(const cs_sup_table_t *t)
{
    char tmp[4096];
    int64_t now_mono = cs_sup_now_ms();
    time_t now_wall = time(NULL);
    FILE *fp;

    if (t->table_path == NULL) {
        return;
    }

    snprintf(tmp, sizeof(tmp), "%s.tmp", t->table_path);
    fp = fopen(tmp, "we");
    if (fp == NULL) {
        cs_log_warn("proc", "fopen %s: %s", tmp, strerror(errno));
        return;
    }

    fprintf(fp, "# role index pid state restarts started\n");
    for (int i = 0; i < t->count; i++) {
        const cs_sup_child_t *c = &t->rows[i];
        long long started = 0;

        if (c->started_ms > 0) {
            started = (long long)now_wall -
                (now_mono - c->started_ms) / 1000;
        }
        fprintf(fp, "%s %d %d %s %u %lld\n", c->name, c->index, (int)c->pid,
            cs_sup_state_name(c->state), c->restarts, started);
    }

    if (fclose(fp) != 0 || rename(tmp, t->table_path) != 0) {
        cs_log_warn("proc", "write %s: %s", t->table_path, strerror(errno));
        (void)unlink(tmp);
    }
}

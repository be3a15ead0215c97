/*
 * Multi-process stress of the session table: this process plays the
 * broker (register, refresh, revoke and expire through the registry, with
 * a clock it moves) while two forked readers look sessions up lock-free.
 *
 * Every registration gets a serial number, and every field of the session
 * is derived from it; a journal in shared anonymous memory maps each
 * minted id to its serial. So a reader detects a torn copy (the id of one
 * session with fields of another, or half-written ones). The journal also
 * tells readers what state each id is in; the broker marks an id "going"
 * before removing it, so a reader that saw "live" both before and after
 * its lookup must have found it, and one that saw "gone" before must not.
 *
 * usage: broker_shm_stress [LOOKUPS_PER_READER]   (default 500000)
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"
#include "shm.h"

#define CAPACITY        64
#define TARGET_LIVE     56
#define IDLE_MS         200
#define JOURNAL_MAX     (1 << 18)
#define READERS         2

enum { ST_NONE, ST_LIVE, ST_GOING, ST_GONE };

typedef struct {
    char id[CS_SESSION_ID_LEN + 1];
    uint32_t serial;
    _Atomic uint32_t state;
} entry_t;

typedef struct {
    _Atomic uint32_t count;
    entry_t entries[JOURNAL_MAX];
} journal_t;

typedef struct {
    uint32_t journal_idx;
    int64_t last_seen;
} live_t;

static int64_t clock_now;

static int64_t
stress_clock(void *arg)
{
    return clock_now;
}

static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}


static void
derive(uint32_t serial, cs_shm_session_t *want)
{
    memset(want, 0, sizeof(*want));
    snprintf(want->display_name, sizeof(want->display_name), "agent-%u",
        serial);
    snprintf(want->pid, sizeof(want->pid), "%u", serial * 7);
    snprintf(want->api_endpoint_uri, sizeof(want->api_endpoint_uri),
        "unix:///run/agent-%u.sock", serial);
}

static int
check_copy(const cs_shm_session_t *s, const entry_t *e)
{
    cs_shm_session_t want;

    derive(e->serial, &want);

    return strcmp(s->id, e->id) == 0
        && strcmp(s->display_name, want.display_name) == 0
        && strcmp(s->pid, want.pid) == 0
        && strcmp(s->api_endpoint_uri, want.api_endpoint_uri) == 0
        && strcmp(s->flavor, "stress") == 0
        && s->last_seen_ms >= s->registered_ms;
}

static int
reader(const char *path, journal_t *j, long lookups, int n)
{
    long i, found = 0, absent = 0, torn = 0, wrong = 0, busy = 0;
    char random_id[CS_SESSION_ID_LEN + 1];
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t) (n + 1);
    uint32_t count, before, after;
    cs_shm_session_t out;
    cs_shm_t *shm;
    uint64_t r;
    entry_t *e;
    char err[256];
    int rc;

    if (cs_shm_attach(&shm, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "reader %d: %s\n", n, err);
        return 1;
    }

    for (i = 0; i < lookups; i++) {
        count = atomic_load(&j->count);
        if (count == 0 || rng_next(&rng) % 10 == 0) {
            /* An id nobody minted (version nibble 0): never found. */
            snprintf(random_id, sizeof(random_id),
                "%08x-0000-0000-8000-%012llx", (unsigned) i,
                (unsigned long long) (rng_next(&rng) & 0xffffffffffffULL));
            rc = cs_shm_session_lookup(shm, random_id, &out, NULL);
            wrong += rc != -ENOENT;
            continue;
        }

        /* Mostly recent ids, which are mostly live; some old ones. */
        r = rng_next(&rng);
        if (r % 4 != 0) {
            e = &j->entries[count - 1 - (r >> 8) % (count < 96 ? count : 96)];
        } else {
            e = &j->entries[(r >> 8) % count];
        }

        before = atomic_load(&e->state);
        rc = cs_shm_session_lookup(shm, e->id, &out, NULL);
        after = atomic_load(&e->state);

        if (rc == -ETIMEDOUT) {
            busy++;
            continue;
        }
        if (rc == 0) {
            found++;
            torn += !check_copy(&out, e);
        } else {
            absent++;
        }
        if (before == ST_LIVE && after == ST_LIVE && rc != 0) {
            wrong++;
        }
        if (before == ST_GONE && rc != -ENOENT) {
            wrong++;
        }
    }

    printf("reader %d: %ld lookups, %ld found, %ld absent, %ld torn, "
        "%ld wrong, %ld timed out\n", n, lookups, found, absent, torn,
        wrong, busy);
    cs_shm_detach(shm);

    return torn == 0 && wrong == 0 && busy == 0 && found > 0 && absent > 0
        ? 0 : 1;
}

typedef struct {
    cs_registry_t *reg;
    journal_t *j;
    live_t live[CAPACITY];
    size_t n_live;
    uint64_t rng;
    long registered, refreshed, revoked, expired;
} writer_t;

static int
writer_register(writer_t *w)
{
    cs_broker_agent_t a = { .flavor = "stress" };
    char id[CS_SESSION_ID_LEN + 1], msg[256];
    cs_shm_session_t want;
    uint32_t idx, secs;
    int rc;

    idx = atomic_load(&w->j->count);
    if (idx == JOURNAL_MAX) {
        return 0;
    }

    derive(idx, &want);
    a.display_name = want.display_name;
    a.pid = want.pid;
    a.api_endpoint_uri = want.api_endpoint_uri;

    rc = cs_registry_register(w->reg, &a, id, &secs, msg, sizeof(msg));
    if (rc < 0) {
        fprintf(stderr, "register: %s\n", msg);
        return rc;
    }

    memcpy(w->j->entries[idx].id, id, sizeof(id));
    w->j->entries[idx].serial = idx;
    atomic_store(&w->j->entries[idx].state, ST_LIVE);
    atomic_store(&w->j->count, idx + 1);
    w->live[w->n_live].journal_idx = idx;
    w->live[w->n_live].last_seen = clock_now;
    w->n_live++;
    w->registered++;

    return 0;
}

static void
writer_forget(writer_t *w, size_t i)
{
    w->live[i] = w->live[--w->n_live];
}

static int
writer_step(writer_t *w)
{
    char msg[256];
    entry_t *e;
    size_t i;
    uint64_t r;

    clock_now++;
    if (w->n_live < TARGET_LIVE && writer_register(w) < 0) {
        return -1;
    }
    if (w->n_live == 0) {
        return 0;
    }

    r = rng_next(&w->rng);
    i = (size_t) (r >> 8) % w->n_live;
    e = &w->j->entries[w->live[i].journal_idx];

    if (r % 100 < 90) {
        if (cs_registry_refresh(w->reg, e->id) != 0) {
            fprintf(stderr, "refresh of a live session failed\n");
            return -1;
        }
        w->live[i].last_seen = clock_now;
        w->refreshed++;
    } else if (r % 100 < 92) {
        atomic_store(&e->state, ST_GOING);
        if (cs_registry_revoke(w->reg, e->id, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "revoke of a live session failed: %s\n", msg);
            return -1;
        }
        atomic_store(&e->state, ST_GONE);
        writer_forget(w, i);
        w->revoked++;
    }

    return 0;
}

/* Expire what is due, after telling the readers it is about to go. */
static int
writer_sweep(writer_t *w)
{
    uint32_t due[CAPACITY];
    size_t i, n = 0;
    int64_t next;
    int got;

    for (i = 0; i < w->n_live; i++) {
        if (clock_now > w->live[i].last_seen + IDLE_MS) {
            due[n] = w->live[i].journal_idx;
            atomic_store(&w->j->entries[due[n]].state, ST_GOING);
            n++;
        }
    }

    got = cs_registry_sweep(w->reg, &next);
    if (got != (int) n) {
        fprintf(stderr, "sweep expired %d sessions, %zu were due\n", got,
            n);
        return -1;
    }

    for (i = 0; i < n; i++) {
        atomic_store(&w->j->entries[due[i]].state, ST_GONE);
    }
    for (i = w->n_live; i-- > 0;) {
        if (clock_now > w->live[i].last_seen + IDLE_MS) {
            writer_forget(w, i);
        }
    }
    w->expired += (long) n;

    return 0;
}

static int
run_writer(cs_shm_t *shm, journal_t *j, pid_t *kids)
{
    cs_registry_params_t p = {
        .enabled = 1,
        .idle_timeout_ms = IDLE_MS,
        .refresh_interval_ms = 1000,
        .clock = stress_clock,
    };
    int running = READERS, status, failed = 0;
    writer_t w = { .j = j, .rng = 88172645463325252ULL };
    long iter;
    pid_t pid;

    if (cs_registry_new(&w.reg, shm, &p) < 0) {
        return 1;
    }

    for (iter = 0; running > 0; iter++) {
        if (writer_step(&w) < 0 || (iter % 5 == 0 && writer_sweep(&w) < 0))
        {
            failed = 1;
            break;
        }
        if (iter % 256 != 0) {
            continue;
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            running--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                failed = 1;
            }
        }
    }

    for (; running > 0; running--) {
        kill(kids[running - 1], SIGKILL);
        waitpid(-1, &status, 0);
    }

    printf("broker: %ld steps, %ld registered, %ld refreshed, %ld revoked, "
        "%ld expired\n", iter, w.registered, w.refreshed, w.revoked,
        w.expired);
    cs_registry_free(w.reg);

    return failed || w.expired == 0 || w.revoked == 0;
}

int
main(int argc, char **argv)
{
    cs_shm_params_t sp = { .session_capacity = CAPACITY,
                           .worker_capacity = 1 };
    long lookups = argc > 1 ? atol(argv[1]) : 500000;
    char dir[] = "/tmp/broker_shm_stress.XXXXXX", path[64], err[256];
    pid_t kids[READERS];
    cs_shm_t *shm;
    journal_t *j;
    int i, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/shm", dir);

    if (cs_shm_create_or_attach(&shm, path, &sp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (j == MAP_FAILED) {
        perror("mmap");
        return 1;
    }

    for (i = 0; i < READERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            _exit(reader(path, j, lookups, i));
        }
    }

    rc = run_writer(shm, j, kids);

    cs_shm_detach(shm);
    unlink(path);
    rmdir(dir);
    printf("%s\n", rc == 0 ? "ok" : "FAILED");

    return rc;
}

/*
 * The broker's shared-memory segment: a file mapped MAP_SHARED by every
 * process of the group.
 *
 * A new segment is built in a temporary file beside its final name and
 * linked into place, so an attacher never maps a half-written header; two
 * brokers racing to create it end up sharing whichever got linked first.
 *
 * Sessions live in an open-addressed table: a session sits on the probe
 * sequence that starts at the hash of its id, at most probe_limit slots
 * from that home slot. Slots never move, and probe_limit only grows, so a
 * reader that probes probe_limit + 1 slots finds every session registered
 * before the lookup started, without taking a lock.
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHM_ALIGN(n)            (((n) + 63) & ~(uint64_t) 63)
#define SHM_SESSION_CAP_MAX     (1u << 20)
#define SHM_WORKER_CAP_MAX      4096u
#define SHM_READ_SPINS          64
#define SHM_READ_YIELDS         1024
#define SHM_READ_TRIES          (SHM_READ_YIELDS + 1000)

struct cs_shm {
    int fd;
    void *base;
    size_t size;
    cs_shm_header_t *hdr;
    cs_shm_registry_stats_t *rstats;
    cs_shm_worker_stats_t *workers;
    cs_shm_session_t *sessions;
};

typedef struct {
    uint64_t rstats_off;
    uint64_t workers_off;
    uint64_t sessions_off;
    uint64_t total;
} shm_offsets_t;

static void
shm_offsets(uint32_t scap, uint32_t wcap, shm_offsets_t *o)
{
    o->rstats_off = SHM_ALIGN(sizeof(cs_shm_header_t));
    o->workers_off = o->rstats_off
        + SHM_ALIGN(sizeof(cs_shm_registry_stats_t));
    o->sessions_off = o->workers_off
        + SHM_ALIGN((uint64_t) wcap * sizeof(cs_shm_worker_stats_t));
    o->total = SHM_ALIGN(o->sessions_off
        + (uint64_t) scap * sizeof(cs_shm_session_t));
}

int64_t
cs_shm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Check a header read from a file of st_size bytes before mapping it. */
static int
shm_header_check(const cs_shm_header_t *h, off_t st_size, const char *path,
    char *err, size_t errlen)
{
    shm_offsets_t o;

    if (st_size < (off_t) sizeof(*h)) {
        snprintf(err, errlen, "%s: truncated segment (%lld bytes)", path,
            (long long) st_size);
        return -EPROTO;
    }

    if (h->magic != CS_SHM_MAGIC) {
        snprintf(err, errlen, "%s: not a configstream segment (bad magic)",
            path);
        return -EPROTO;
    }

    if (h->layout_version != CS_SHM_LAYOUT_VERSION
        || h->header_size != sizeof(*h))
    {
        snprintf(err, errlen, "%s: segment layout version %u (header %u "
            "bytes), this build needs version %u (header %zu bytes)", path,
            h->layout_version, h->header_size, CS_SHM_LAYOUT_VERSION,
            sizeof(*h));
        return -EPROTO;
    }

    if (h->session_capacity == 0 || h->session_capacity > SHM_SESSION_CAP_MAX
        || h->worker_capacity == 0 || h->worker_capacity > SHM_WORKER_CAP_MAX)
    {
        snprintf(err, errlen, "%s: segment capacities out of range "
            "(sessions %u, workers %u)", path, h->session_capacity,
            h->worker_capacity);
        return -EPROTO;
    }

    shm_offsets(h->session_capacity, h->worker_capacity, &o);
    if (h->total_size != o.total) {
        snprintf(err, errlen, "%s: segment size %llu does not match its "
            "capacities (%llu)", path, (unsigned long long) h->total_size,
            (unsigned long long) o.total);
        return -EPROTO;
    }

    if ((uint64_t) st_size < o.total) {
        snprintf(err, errlen, "%s: truncated segment (%lld of %llu bytes)",
            path, (long long) st_size, (unsigned long long) o.total);
        return -EPROTO;
    }

    return 0;
}

static int
shm_map(cs_shm_t **out, int fd, uint64_t total)
{
    shm_offsets_t o;
    cs_shm_t *shm;
    void *base;

    shm = calloc(1, sizeof(*shm));
    if (shm == NULL) {
        return -ENOMEM;
    }

    base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        free(shm);
        return -errno;
    }

    shm->fd = fd;
    shm->base = base;
    shm->size = total;
    shm->hdr = base;
    shm_offsets(shm->hdr->session_capacity, shm->hdr->worker_capacity, &o);
    shm->rstats = (void *) ((char *) base + o.rstats_off);
    shm->workers = (void *) ((char *) base + o.workers_off);
    shm->sessions = (void *) ((char *) base + o.sessions_off);
    *out = shm;

    return 0;
}

static int
shm_open_existing(cs_shm_t **out, const char *path, char *err,
    size_t errlen)
{
    cs_shm_header_t h;
    struct stat st;
    ssize_t n;
    int fd, rc;

    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd == -1) {
        rc = -errno;
        snprintf(err, errlen, "open %s: %s", path, strerror(-rc));
        return rc;
    }

    if (fstat(fd, &st) == -1) {
        rc = -errno;
        snprintf(err, errlen, "fstat %s: %s", path, strerror(-rc));
        goto out_close;
    }

    memset(&h, 0, sizeof(h));
    n = pread(fd, &h, sizeof(h), 0);
    if (n < 0) {
        rc = -errno;
        snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
        goto out_close;
    }

    rc = shm_header_check(&h, n < (ssize_t) sizeof(h) ? n : st.st_size,
        path, err, errlen);
    if (rc < 0) {
        goto out_close;
    }

    rc = shm_map(out, fd, h.total_size);
    if (rc < 0) {
        snprintf(err, errlen, "mmap %s: %s", path, strerror(-rc));
        goto out_close;
    }

    return 0;

out_close:
    close(fd);
    return rc;
}

int
cs_shm_attach(cs_shm_t **shm, const char *path, char *err, size_t errlen)
{
    return shm_open_existing(shm, path, err, errlen);
}

/*
 * Build a fresh segment in a temporary file and link it to path. Returns
 * -EEXIST when another process linked one first.
 */
static int
shm_create(cs_shm_t **out, const char *path, const cs_shm_params_t *p,
    char *err, size_t errlen)
{
    cs_shm_header_t *h;
    shm_offsets_t o;
    cs_shm_t *shm;
    char *tmp;
    int fd, rc;

    shm_offsets(p->session_capacity, p->worker_capacity, &o);

    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        return -ENOMEM;
    }

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd == -1) {
        rc = -errno;
        snprintf(err, errlen, "mkostemp %s: %s", tmp, strerror(-rc));
        goto out_free;
    }

    if (fchmod(fd, 0600) == -1 || ftruncate(fd, (off_t) o.total) == -1) {
        rc = -errno;
        snprintf(err, errlen, "ftruncate %s: %s", tmp, strerror(-rc));
        goto out_unlink;
    }

    /* The header is written before mapping so shm_map sees capacities. */
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        rc = -ENOMEM;
        goto out_unlink;
    }
    h->magic = CS_SHM_MAGIC;
    h->layout_version = CS_SHM_LAYOUT_VERSION;
    h->header_size = sizeof(*h);
    h->total_size = o.total;
    h->session_capacity = p->session_capacity;
    h->worker_capacity = p->worker_capacity;
    h->created_ms = cs_shm_now_ms();
    if (pwrite(fd, h, sizeof(*h), 0) != (ssize_t) sizeof(*h)) {
        rc = errno ? -errno : -EIO;
        free(h);
        snprintf(err, errlen, "write %s: %s", tmp, strerror(-rc));
        goto out_unlink;
    }
    free(h);

    rc = shm_map(&shm, fd, o.total);
    if (rc < 0) {
        snprintf(err, errlen, "mmap %s: %s", tmp, strerror(-rc));
        goto out_unlink;
    }

    if (link(tmp, path) == -1) {
        rc = -errno;
        if (rc != -EEXIST) {
            snprintf(err, errlen, "link %s: %s", path, strerror(-rc));
        }
        cs_shm_detach(shm);
        fd = -1;
        goto out_unlink;
    }

    unlink(tmp);
    free(tmp);
    *out = shm;

    return 0;

out_unlink:
    unlink(tmp);
    if (fd != -1) {
        close(fd);
    }
out_free:
    free(tmp);
    return rc;
}

static int
shm_id_well_formed(const char *id)
{
    size_t i;

    for (i = 0; i < CS_SESSION_ID_LEN; i++) {
        char c = id[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return 0;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }

    return id[CS_SESSION_ID_LEN] == '\0';
}

/*
 * A broker killed in the middle of a slot write leaves its seq odd, which
 * would make readers of that slot time out forever. The write may have
 * been half done: a slot that still holds a well-formed id only had its
 * counters touched and is kept; anything else is freed.
 */
static void
shm_repair_slots(cs_shm_t *shm)
{
    uint32_t i, seq;

    for (i = 0; i < shm->hdr->session_capacity; i++) {
        cs_shm_session_t *s = &shm->sessions[i];

        seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if ((seq & 1) == 0) {
            continue;
        }

        if (s->in_use && !shm_id_well_formed(s->id)) {
            s->in_use = 0;
        }
        atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
    }
}

int
cs_shm_create_or_attach(cs_shm_t **shm, const char *path,
    cs_shm_params_t *params, char *err, size_t errlen)
{
    int attempt, rc;

    if (params->session_capacity == 0
        || params->session_capacity > SHM_SESSION_CAP_MAX
        || params->worker_capacity == 0
        || params->worker_capacity > SHM_WORKER_CAP_MAX)
    {
        snprintf(err, errlen, "segment capacities out of range (sessions "
            "%u, workers %u)", params->session_capacity,
            params->worker_capacity);
        return -EINVAL;
    }

    for (attempt = 0; attempt < 3; attempt++) {
        rc = shm_open_existing(shm, path, err, errlen);
        if (rc == 0) {
            shm_repair_slots(*shm);
            params->session_capacity = (*shm)->hdr->session_capacity;
            params->worker_capacity = (*shm)->hdr->worker_capacity;
            return 0;
        }
        if (rc != -ENOENT) {
            return rc;
        }

        rc = shm_create(shm, path, params, err, errlen);
        if (rc != -EEXIST) {
            return rc;
        }
    }

    snprintf(err, errlen, "%s: segment keeps appearing and vanishing", path);
    return -EAGAIN;
}

void
cs_shm_detach(cs_shm_t *shm)
{
    if (shm == NULL) {
        return;
    }

    munmap(shm->base, shm->size);
    close(shm->fd);
    free(shm);
}

cs_shm_header_t *
cs_shm_header(cs_shm_t *shm)
{
    return shm->hdr;
}

cs_shm_session_t *
cs_shm_session(cs_shm_t *shm, uint32_t slot)
{
    if (slot >= shm->hdr->session_capacity) {
        return NULL;
    }

    return &shm->sessions[slot];
}

cs_shm_worker_stats_t *
cs_shm_worker(cs_shm_t *shm, uint32_t idx)
{
    if (idx >= shm->hdr->worker_capacity) {
        return NULL;
    }

    return &shm->workers[idx];
}

cs_shm_registry_stats_t *
cs_shm_registry_stats(cs_shm_t *shm)
{
    return shm->rstats;
}

/* The change word. */

static void
shm_futex_wake_all(_Atomic uint32_t *word)
{
    /* Not FUTEX_PRIVATE_FLAG: the waiters are in other processes. */
    syscall(SYS_futex, (uint32_t *) word, FUTEX_WAKE, INT_MAX, NULL, NULL,
        0);
}

void
cs_shm_wake(cs_shm_t *shm)
{
    atomic_fetch_add_explicit(&shm->hdr->wake_word, 1, memory_order_release);
    shm_futex_wake_all(&shm->hdr->wake_word);
}

void
cs_shm_publish_head(cs_shm_t *shm, uint64_t head_seq)
{
    atomic_store_explicit(&shm->hdr->head_seq, head_seq,
        memory_order_release);
    cs_shm_wake(shm);
}

uint64_t
cs_shm_head(cs_shm_t *shm)
{
    return atomic_load_explicit(&shm->hdr->head_seq, memory_order_acquire);
}

uint32_t
cs_shm_wake_word(cs_shm_t *shm)
{
    return atomic_load_explicit(&shm->hdr->wake_word, memory_order_acquire);
}

static int64_t
shm_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
cs_shm_wait(cs_shm_t *shm, uint32_t *seen, int timeout_ms)
{
    int64_t deadline = 0, left;
    struct timespec ts, *tsp;
    uint32_t cur;

    if (timeout_ms >= 0) {
        deadline = shm_mono_ns() + (int64_t) timeout_ms * 1000000;
    }

    for (;;) {
        cur = cs_shm_wake_word(shm);
        if (cur != *seen) {
            *seen = cur;
            return 0;
        }

        tsp = NULL;
        if (timeout_ms >= 0) {
            left = deadline - shm_mono_ns();
            if (left <= 0) {
                return -ETIMEDOUT;
            }
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }

        /* EAGAIN (the word moved before we slept) and ETIMEDOUT are
         * settled by the checks at the top of the loop. */
        if (syscall(SYS_futex, (uint32_t *) &shm->hdr->wake_word,
                FUTEX_WAIT, cur, tsp, NULL, 0) == -1 && errno == EINTR)
        {
            return -EINTR;
        }
    }
}

/* Sessions. */

static uint32_t
shm_id_hash(const char *id)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < CS_SESSION_ID_LEN; i++) {
        h ^= (unsigned char) id[i];
        h *= 16777619u;
    }

    return h;
}

/* Equal in time that does not depend on where the ids differ. */
static int
shm_id_equal(const volatile char *a, const char *b)
{
    unsigned char diff = 0;
    size_t i;

    for (i = 0; i < CS_SESSION_ID_LEN; i++) {
        diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
    }

    return diff == 0;
}

/*
 * A writer descheduled in the middle of a slot write keeps readers out;
 * spin briefly, then give it the CPU, then sleep. Bounded: about 50 ms in
 * all before the reader gives up.
 */
static void
shm_read_backoff(unsigned tries)
{
    struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000 };

    if (tries < SHM_READ_SPINS) {
        return;
    }
    if (tries < SHM_READ_YIELDS) {
        sched_yield();
        return;
    }
    nanosleep(&ts, NULL);
}

/*
 * Seqlock read of one slot. With id set, the slot is copied to out only
 * when it is in use and holds that id (*match set accordingly); without
 * id, it is copied when in use. The plain reads race with the broker's
 * writes by design: the seq re-check throws away any copy they tore.
 */
static int
shm_slot_read(cs_shm_session_t *s, const char *id, cs_shm_session_t *out,
    int *match)
{
    uint32_t s1, s2, tries;
    int hit;

    for (tries = 0; tries < SHM_READ_TRIES; tries++) {
        s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1) {
            shm_read_backoff(tries);
            continue;
        }

        hit = *(volatile uint32_t *) &s->in_use != 0;
        if (hit && id != NULL) {
            hit = shm_id_equal(s->id, id);
        }
        if (hit) {
            memcpy((char *) out + sizeof(out->seq),
                (const char *) s + sizeof(s->seq),
                sizeof(*s) - sizeof(s->seq));
        }

        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (s1 == s2) {
            if (hit) {
                atomic_store_explicit(&out->seq, s1, memory_order_relaxed);
                out->id[CS_SESSION_ID_LEN] = '\0';
            }
            *match = hit;
            return 0;
        }
        shm_read_backoff(tries);
    }

    return -ETIMEDOUT;
}

int
cs_shm_session_lookup(cs_shm_t *shm, const char *id, cs_shm_session_t *out,
    uint32_t *slot)
{
    int rc;

    rc = cs_shm_session_find(shm, id, out, slot);
    if (rc == -ENOENT) {
        atomic_fetch_add_explicit(&shm->rstats->rejected_lookups, 1,
            memory_order_relaxed);
    }

    return rc;
}

int
cs_shm_session_find(cs_shm_t *shm, const char *id, cs_shm_session_t *out,
    uint32_t *slot)
{
    uint32_t cap, home, limit, i, idx;
    int match, rc;

    if (id == NULL || strnlen(id, CS_SESSION_ID_LEN + 1)
        != CS_SESSION_ID_LEN)
    {
        return -ENOENT;
    }

    cap = shm->hdr->session_capacity;
    home = shm_id_hash(id) % cap;
    limit = atomic_load_explicit(&shm->hdr->probe_limit,
        memory_order_acquire);
    if (limit >= cap) {
        limit = cap - 1;
    }

    for (i = 0; i <= limit; i++) {
        idx = (home + i) % cap;

        rc = shm_slot_read(&shm->sessions[idx], id, out, &match);
        if (rc < 0) {
            return rc;
        }
        if (match) {
            if (slot != NULL) {
                *slot = idx;
            }
            return 0;
        }
    }

    return -ENOENT;
}

int
cs_shm_session_read(cs_shm_t *shm, uint32_t slot, cs_shm_session_t *out)
{
    int match, rc;

    if (slot >= shm->hdr->session_capacity) {
        return -EINVAL;
    }

    rc = shm_slot_read(&shm->sessions[slot], NULL, out, &match);
    if (rc < 0) {
        return rc;
    }

    return match ? 0 : -ENOENT;
}

int
cs_shm_session_alloc(cs_shm_t *shm, const char *id, uint32_t *slot)
{
    uint32_t cap, home, i, idx;

    cap = shm->hdr->session_capacity;
    home = shm_id_hash(id) % cap;

    for (i = 0; i < cap; i++) {
        idx = (home + i) % cap;
        if (shm->sessions[idx].in_use) {
            continue;
        }

        if (i > atomic_load_explicit(&shm->hdr->probe_limit,
                memory_order_relaxed))
        {
            atomic_store_explicit(&shm->hdr->probe_limit, i,
                memory_order_release);
        }
        *slot = idx;
        return 0;
    }

    return -ENOSPC;
}

void
cs_shm_session_write_begin(cs_shm_t *shm, uint32_t slot)
{
    cs_shm_session_t *s = &shm->sessions[slot];
    uint32_t seq;

    seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    /* The odd seq must be visible before any field changes. */
    atomic_thread_fence(memory_order_release);
}

void
cs_shm_session_write_end(cs_shm_t *shm, uint32_t slot)
{
    cs_shm_session_t *s = &shm->sessions[slot];
    uint32_t seq;

    seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
}

/* Worker telemetry blocks. */

static int
shm_worker_take(cs_shm_worker_stats_t *w, int32_t expect, int32_t pid)
{
    if (!atomic_compare_exchange_strong(&w->owner_pid, &expect, pid)) {
        return 0;
    }

    /* Counters stay: the exporter's sums must never go backwards. The
     * gauge belonged to the previous owner's streams, which are gone. */
    atomic_store(&w->subscribers, 0);

    return 1;
}

int
cs_shm_worker_claim(cs_shm_t *shm, uint32_t *idx)
{
    int32_t pid = (int32_t) getpid(), owner;
    uint32_t cap, i;

    cap = shm->hdr->worker_capacity;

    for (i = 0; i < cap; i++) {
        if (shm_worker_take(&shm->workers[i], 0, pid)) {
            *idx = i;
            return 0;
        }
    }

    for (i = 0; i < cap; i++) {
        owner = atomic_load(&shm->workers[i].owner_pid);
        if (owner == 0 || owner == pid) {
            continue;
        }
        if (kill(owner, 0) == 0 || errno != ESRCH) {
            continue;
        }
        if (shm_worker_take(&shm->workers[i], owner, pid)) {
            *idx = i;
            return 0;
        }
    }

    return -ENOSPC;
}

void
cs_shm_worker_release(cs_shm_t *shm, uint32_t idx)
{
    cs_shm_worker_stats_t *w = cs_shm_worker(shm, idx);

    if (w == NULL) {
        return;
    }

    atomic_store(&w->subscribers, 0);
    atomic_store(&w->owner_pid, 0);
}

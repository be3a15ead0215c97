/*
 * The change word across processes: a waiter in another process is woken
 * promptly by cs_shm_publish_head, and is never woken while nothing
 * changes (it sleeps in the kernel, it does not poll).
 *
 * Prints the median and worst wake-up latency; fails when the median is
 * above a bound generous enough for a loaded CI machine.
 *
 * usage: broker_wake [ROUNDS]   (default 50)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

#define MEDIAN_BOUND_NS     (50 * 1000000LL)
#define IDLE_MS             300

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

/* Child: per round, say ready, sleep on the word, report when woken. */
static int
waiter(const char *path, int ready_fd, int done_fd, int rounds)
{
    struct { int64_t at; uint64_t head; } r;
    cs_shm_t *shm;
    uint32_t seen;
    char err[256];
    int i;

    if (cs_shm_attach(&shm, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "waiter: %s\n", err);
        return 1;
    }

    for (i = 0; i < rounds; i++) {
        seen = cs_shm_wake_word(shm);
        if (write(ready_fd, "r", 1) != 1) {
            return 1;
        }
        if (cs_shm_wait(shm, &seen, 5000) != 0) {
            fprintf(stderr, "waiter: not woken in round %d\n", i);
            return 1;
        }
        r.at = mono_ns();
        r.head = cs_shm_head(shm);
        if (write(done_fd, &r, sizeof(r)) != (ssize_t) sizeof(r)) {
            return 1;
        }
    }

    cs_shm_detach(shm);

    return 0;
}

/* Child: count wake-ups over IDLE_MS with nobody publishing. */
static int
idle_waiter(const char *path)
{
    int64_t end = mono_ns() + IDLE_MS * 1000000LL, left;
    struct rusage ru;
    int wakeups = 0, rc;
    cs_shm_t *shm;
    uint32_t seen;
    char err[256];
    long cpu_us;

    if (cs_shm_attach(&shm, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "idle waiter: %s\n", err);
        return 1;
    }

    seen = cs_shm_wake_word(shm);
    while ((left = end - mono_ns()) > 0) {
        rc = cs_shm_wait(shm, &seen, (int) (left / 1000000) + 1);
        if (rc == 0) {
            wakeups++;
        }
    }

    getrusage(RUSAGE_SELF, &ru);
    cpu_us = ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec
        + ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    printf("idle: %d wake-ups in %d ms, waiter used %ld us of CPU\n",
        wakeups, IDLE_MS, cpu_us);
    cs_shm_detach(shm);

    return wakeups == 0 ? 0 : 1;
}

static int
child_status(pid_t pid)
{
    int status;

    if (waitpid(pid, &status, 0) != pid) {
        return 1;
    }

    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int
measure(cs_shm_t *shm, const char *path, int rounds)
{
    struct { int64_t at; uint64_t head; } r;
    int ready[2], done[2], i, bad = 0;
    struct timespec settle = { 0, 2000000 };
    int64_t *lat, t0;
    char c;
    pid_t pid;

    lat = calloc((size_t) rounds, sizeof(*lat));
    if (lat == NULL || pipe(ready) == -1 || pipe(done) == -1) {
        return 1;
    }

    pid = fork();
    if (pid == 0) {
        _exit(waiter(path, ready[1], done[1], rounds));
    }

    for (i = 0; i < rounds; i++) {
        if (read(ready[0], &c, 1) != 1) {
            return 1;
        }
        /* Let the waiter get into the kernel before publishing. */
        nanosleep(&settle, NULL);

        t0 = mono_ns();
        cs_shm_publish_head(shm, (uint64_t) i + 1);
        if (read(done[0], &r, sizeof(r)) != (ssize_t) sizeof(r)) {
            return 1;
        }
        lat[i] = r.at - t0;
        bad += r.head != (uint64_t) i + 1;
    }

    if (child_status(pid) != 0) {
        return 1;
    }

    qsort(lat, (size_t) rounds, sizeof(*lat), cmp_i64);
    printf("wake-up latency over %d rounds: median %.1f us, max %.1f us\n",
        rounds, lat[rounds / 2] / 1000.0, lat[rounds - 1] / 1000.0);
    if (bad > 0) {
        printf("%d wake-ups saw a stale head\n", bad);
    }

    i = lat[rounds / 2] < MEDIAN_BOUND_NS && bad == 0 ? 0 : 1;
    free(lat);

    return i;
}

int
main(int argc, char **argv)
{
    cs_shm_params_t sp = { .session_capacity = 4, .worker_capacity = 1 };
    char dir[] = "/tmp/broker_wake.XXXXXX", path[64], err[256];
    int rounds = argc > 1 ? atoi(argv[1]) : 50, rc;
    cs_shm_t *shm;
    pid_t pid;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (rounds < 1 || mkdtemp(dir) == NULL) {
        return 1;
    }
    snprintf(path, sizeof(path), "%s/shm", dir);

    if (cs_shm_create_or_attach(&shm, path, &sp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    rc = measure(shm, path, rounds);

    pid = fork();
    if (pid == 0) {
        _exit(idle_waiter(path));
    }
    rc |= child_status(pid);

    cs_shm_detach(shm);
    unlink(path);
    rmdir(dir);
    printf("%s\n", rc == 0 ? "ok" : "FAILED");

    return rc;
}

/*
 * Resource use of the processes under test, read from /proc: CPU time
 * (user + system, all threads) and resident memory.
 *
 * A process set is given as roots; each sample covers the roots and all
 * their live descendants, found again at every sample so that a process
 * started or respawned in between is counted. CPU time of a process that
 * exited between two samples is lost; the benchmark never kills one while
 * measuring. Thread times come in two forms (see bench_usage_t); the
 * caller picks the precise one for short intervals.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <sys/types.h>

#define BENCH_PROC_MAX 256

/* Roles told apart by program name, for a CPU breakdown. */
typedef enum {
    BENCH_ROLE_FRONTEND = 0,
    BENCH_ROLE_RESOLVER,
    BENCH_ROLE_BROKER,
    BENCH_ROLE_OTHER,           /* the supervisor, or a peer's server */
    BENCH_ROLE_COUNT
} bench_role_t;

extern const char *const bench_role_names[BENCH_ROLE_COUNT];

typedef struct {
    double cpu_s;           /* user + system seconds, summed, from
                               /proc/PID/stat: clock-tick resolution, but
                               counts threads that have exited */
    double cpu_sched_s;     /* the same from the live threads'
                               schedstat: nanosecond resolution */
    long rss_kb;            /* resident set, summed */
    long frontend_rss_kb;   /* resident set of the frontend workers */
    double role_cpu_sched_s[BENCH_ROLE_COUNT];
    int nproc;
} bench_usage_t;

/*
 * Fill pids with the roots and their descendants; *n gets the count
 * (at most cap).
 */
int bench_proc_tree(const pid_t *roots, int nroots, pid_t *pids, int cap,
    int *n);

/* Sum the usage of the roots' process trees. */
int bench_proc_usage(const pid_t *roots, int nroots, bench_usage_t *u);

#endif /* BENCH_PROC_H */

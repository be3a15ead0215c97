#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_proc.h"

typedef struct {
    pid_t pid;
    pid_t ppid;
} bench_proc_link_t;

const char *const bench_role_names[BENCH_ROLE_COUNT] = {
    "frontend", "resolver", "broker", "other"
};

/*
 * The fields of /proc/PID/stat after the command name, which is in
 * parentheses and may itself hold spaces and parentheses: hence the search
 * for the last ')'.
 */
static int bench_proc_stat(pid_t pid, pid_t *ppid, double *cpu_s)
{
    char path[64], buf[1024];
    unsigned long utime, stime;
    char *p;
    FILE *f;
    int got;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }

    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (p == NULL) {
        return -EIO;
    }

    p = strrchr(buf, ')');
    if (p == NULL) {
        return -EPROTO;
    }

    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    got = sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
        ppid, &utime, &stime);
    if (got != 3) {
        return -EPROTO;
    }

    *cpu_s = (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
    return 0;
}

static long bench_proc_rss_kb(pid_t pid)
{
    char path[64];
    long size, resident;
    FILE *f;
    int got;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (got != 2) {
        return 0;
    }

    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Time on CPU of every live thread, in seconds, from schedstat. */
static double bench_proc_sched_s(pid_t pid)
{
    char path[96];
    unsigned long long ns, total = 0;
    struct dirent *de;
    FILE *f;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
    d = opendir(path);
    if (d == NULL) {
        return 0;
    }

    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char) de->d_name[0])) {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat",
            (int) pid, de->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fscanf(f, "%llu", &ns) == 1) {
            total += ns;
        }
        fclose(f);
    }

    closedir(d);
    return (double) total / 1e9;
}

/* The role of a process, from its command line. */
static bench_role_t bench_proc_role(pid_t pid)
{
    static const char *const needles[] = {
        "configstream-frontend", "configstream-resolver",
        "configstream-broker"
    };
    char path[64], buf[256];
    ssize_t len;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return BENCH_ROLE_OTHER;
    }

    len = (ssize_t) fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    if (len <= 0) {
        return BENCH_ROLE_OTHER;
    }

    buf[len] = '\0';
    for (int r = 0; r < BENCH_ROLE_OTHER; r++) {
        if (strstr(buf, needles[r]) != NULL) {
            return (bench_role_t) r;
        }
    }
    return BENCH_ROLE_OTHER;
}

static int bench_proc_links(bench_proc_link_t **links, int *n)
{
    bench_proc_link_t *v = NULL, *nv;
    struct dirent *de;
    int cap = 0, count = 0;
    double cpu;
    pid_t ppid;
    DIR *d;

    d = opendir("/proc");
    if (d == NULL) {
        return -errno;
    }

    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char) de->d_name[0])) {
            continue;
        }

        if (bench_proc_stat(atoi(de->d_name), &ppid, &cpu) < 0) {
            continue;
        }

        if (count == cap) {
            cap = cap ? cap * 2 : 256;
            nv = realloc(v, (size_t) cap * sizeof(*v));
            if (nv == NULL) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }

        v[count].pid = atoi(de->d_name);
        v[count].ppid = ppid;
        count++;
    }

    closedir(d);
    *links = v;
    *n = count;
    return 0;
}

static int bench_proc_has(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++) {
        if (pids[i] == pid) {
            return 1;
        }
    }
    return 0;
}

int bench_proc_tree(const pid_t *roots, int nroots, pid_t *pids, int cap,
    int *n)
{
    bench_proc_link_t *links = NULL;
    int nlinks = 0, count = 0, grew, rc;

    rc = bench_proc_links(&links, &nlinks);
    if (rc < 0) {
        return rc;
    }

    for (int i = 0; i < nroots && count < cap; i++) {
        if (!bench_proc_has(pids, count, roots[i])) {
            pids[count++] = roots[i];
        }
    }

    /* The trees are shallow (supervisor, children): a few passes do. */
    do {
        grew = 0;
        for (int i = 0; i < nlinks && count < cap; i++) {
            if (bench_proc_has(pids, count, links[i].ppid)
                && !bench_proc_has(pids, count, links[i].pid))
            {
                pids[count++] = links[i].pid;
                grew = 1;
            }
        }
    } while (grew);

    free(links);
    *n = count;
    return 0;
}

int bench_proc_usage(const pid_t *roots, int nroots, bench_usage_t *u)
{
    pid_t pids[BENCH_PROC_MAX], ppid;
    double cpu, sched;
    bench_role_t role;
    long rss;
    int n, rc;

    rc = bench_proc_tree(roots, nroots, pids, BENCH_PROC_MAX, &n);
    if (rc < 0) {
        return rc;
    }

    memset(u, 0, sizeof(*u));
    for (int i = 0; i < n; i++) {
        if (bench_proc_stat(pids[i], &ppid, &cpu) < 0) {
            continue;
        }

        rss = bench_proc_rss_kb(pids[i]);
        sched = bench_proc_sched_s(pids[i]);
        role = bench_proc_role(pids[i]);
        u->cpu_s += cpu;
        u->cpu_sched_s += sched;
        u->role_cpu_sched_s[role] += sched;
        u->rss_kb += rss;
        if (role == BENCH_ROLE_FRONTEND) {
            u->frontend_rss_kb += rss;
        }
        u->nproc++;
    }

    return 0;
}

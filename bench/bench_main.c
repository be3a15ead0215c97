/*
 * configstream-bench: the load generator of the benchmark. It connects N
 * subscribers to configstream (or to etcd, the peer it is compared with),
 * makes configuration changes, and prints one JSON object with what it
 * measured: open-to-snapshot times, CPU and memory of the server processes
 * read from /proc, and set-to-last-subscriber propagation times.
 *
 * The phases run in the order given by --phases on one fleet:
 *   open    (always) connect, then open the streams one by one; memory
 *           per subscriber is the servers' RSS after minus before
 *   idle    CPU of the servers while nothing changes
 *   paced   --updates changes at --rate-hz
 *   burst   --burst changes back to back
 *   slow    --slow-updates changes back to back, twice: all subscribers
 *           reading, then with subscriber 0 no longer reading
 *   rate    changes back to back for --rate-seconds: sustained rate
 *
 * Exit status: 0 on success, 1 when a phase failed (the JSON then holds
 * what was measured and an "error"), 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "etcd_rpc.pb-c.h"

#include "bench_driver.h"
#include "bench_fleet.h"
#include "bench_grpc.h"
#include "bench_proc.h"
#include "grpc_util.h"

#define BENCH_ERR_MAX 512
#define BENCH_WAIT_MS 60000

typedef struct {
    bench_target_t target;
    const char *address;
    const char *cert;
    const char *token_file;
    const char *control_socket;
    const char *key;
    const char *prefix;
    const char *phases;
    pid_t roots[BENCH_PROC_MAX];
    int nroots;
    int subscribers;
    int updates;
    int burst;
    double rate_hz;
    double idle_s;
    int slow_updates;
    double rate_s;
    int preload;
    int timeout_ms;
} bench_opts_t;

typedef struct {
    bench_opts_t *o;
    bench_fleet_t *fleet;
    bench_driver_t *driver;
    json_object *out;
    char err[BENCH_ERR_MAX];
} bench_t;

typedef struct {
    int64_t seq;
    int64_t t_send;             /* the change was sent */
    int64_t t_ack;              /* the server said it was committed */
} bench_change_t;

static void bench_usage(FILE *f)
{
    fprintf(f,
        "usage: configstream-bench [options]\n"
        "  --target configstream|etcd   server under test (configstream)\n"
        "  --address HOST:PORT          its gRPC address (127.0.0.1:5001)\n"
        "  --cert FILE                  PEM with the server certificate "
        "(TLS); plaintext without it\n"
        "  --token-file FILE            bearer token (configstream)\n"
        "  --control-socket PATH        resolver control socket "
        "(configstream)\n"
        "  --pid PID                    a server process (its descendants "
        "are counted too); repeatable\n"
        "  --subscribers N              fleet size (10)\n"
        "  --phases LIST                open,idle,paced,burst,slow,rate "
        "(open,paced,burst)\n"
        "  --updates N                  paced changes (100)\n"
        "  --rate-hz R                  paced rate (20)\n"
        "  --burst N                    burst changes (1000)\n"
        "  --idle-seconds S             idle measurement (30)\n"
        "  --slow-updates N             changes of each slow run (1000)\n"
        "  --rate-seconds S             sustained-rate run (10)\n"
        "  --key KEY                    the key changed\n"
        "  --prefix P                   etcd: the prefix watched (/bench/)\n"
        "  --preload N                  etcd: put N keys under the prefix "
        "first (0)\n"
        "  --timeout-ms MS              per stream open (10000)\n");
}

static int bench_parse_target(const char *s, bench_target_t *t)
{
    if (strcmp(s, "configstream") == 0) {
        *t = BENCH_TARGET_CONFIGSTREAM;
    } else if (strcmp(s, "etcd") == 0) {
        *t = BENCH_TARGET_ETCD;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int bench_parse_args(int argc, char **argv, bench_opts_t *o)
{
    static const struct option longopts[] = {
        { "target", required_argument, NULL, 't' },
        { "address", required_argument, NULL, 'a' },
        { "cert", required_argument, NULL, 'c' },
        { "token-file", required_argument, NULL, 'T' },
        { "control-socket", required_argument, NULL, 's' },
        { "pid", required_argument, NULL, 'p' },
        { "subscribers", required_argument, NULL, 'n' },
        { "phases", required_argument, NULL, 'P' },
        { "updates", required_argument, NULL, 'u' },
        { "rate-hz", required_argument, NULL, 'r' },
        { "burst", required_argument, NULL, 'b' },
        { "idle-seconds", required_argument, NULL, 'i' },
        { "slow-updates", required_argument, NULL, 'S' },
        { "rate-seconds", required_argument, NULL, 'R' },
        { "key", required_argument, NULL, 'k' },
        { "prefix", required_argument, NULL, 'x' },
        { "preload", required_argument, NULL, 'l' },
        { "timeout-ms", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;

    *o = (bench_opts_t) {
        .target = BENCH_TARGET_CONFIGSTREAM,
        .address = "127.0.0.1:5001",
        .prefix = "/bench/",
        .phases = "open,paced,burst",
        .subscribers = 10,
        .updates = 100,
        .burst = 1000,
        .rate_hz = 20,
        .idle_s = 30,
        .slow_updates = 1000,
        .rate_s = 10,
        .timeout_ms = 10000,
    };

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (bench_parse_target(optarg, &o->target) < 0) {
                fprintf(stderr, "configstream-bench: unknown target %s\n",
                    optarg);
                return -EINVAL;
            }
            break;
        case 'a': o->address = optarg; break;
        case 'c': o->cert = optarg; break;
        case 'T': o->token_file = optarg; break;
        case 's': o->control_socket = optarg; break;
        case 'p':
            if (o->nroots == BENCH_PROC_MAX) {
                return -E2BIG;
            }
            o->roots[o->nroots++] = (pid_t) atoi(optarg);
            break;
        case 'n': o->subscribers = atoi(optarg); break;
        case 'P': o->phases = optarg; break;
        case 'u': o->updates = atoi(optarg); break;
        case 'r': o->rate_hz = atof(optarg); break;
        case 'b': o->burst = atoi(optarg); break;
        case 'i': o->idle_s = atof(optarg); break;
        case 'S': o->slow_updates = atoi(optarg); break;
        case 'R': o->rate_s = atof(optarg); break;
        case 'k': o->key = optarg; break;
        case 'x': o->prefix = optarg; break;
        case 'l': o->preload = atoi(optarg); break;
        case 'o': o->timeout_ms = atoi(optarg); break;
        case 'h':
            bench_usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }

    if (optind != argc || o->subscribers < 1 || o->updates < 1
        || o->burst < 1 || o->slow_updates < 1 || o->rate_hz <= 0)
    {
        return -EINVAL;
    }

    if (o->target == BENCH_TARGET_CONFIGSTREAM
        && (o->token_file == NULL || o->control_socket == NULL))
    {
        fprintf(stderr, "configstream-bench: configstream needs "
            "--token-file and --control-socket\n");
        return -EINVAL;
    }

    return 0;
}

static int bench_has_phase(const bench_opts_t *o, const char *phase)
{
    size_t len = strlen(phase);
    const char *p = o->phases;

    while ((p = strstr(p, phase)) != NULL) {
        if ((p == o->phases || p[-1] == ',')
            && (p[len] == ',' || p[len] == '\0'))
        {
            return 1;
        }
        p += len;
    }
    return 0;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of v (sorted in place). */
static double bench_pct(double *v, size_t n, double q)
{
    size_t rank;

    if (n == 0) {
        return NAN;
    }

    qsort(v, n, sizeof(*v), bench_cmp_double);
    rank = (size_t) ceil(q * (double) n);
    if (rank < 1) {
        rank = 1;
    }
    return v[rank - 1];
}

/* Three decimals: the figures are ms, us, KB and %, never finer. */
static json_object *bench_json_num(double d)
{
    char text[64];

    if (isnan(d) || isinf(d)) {
        return NULL;
    }
    snprintf(text, sizeof(text), "%.3f", d);
    return json_object_new_double_s(d, text);
}

static void bench_set(json_object *o, const char *k, double d)
{
    json_object_object_add(o, k, bench_json_num(d));
}

static void bench_set_int(json_object *o, const char *k, int64_t i)
{
    json_object_object_add(o, k, json_object_new_int64(i));
}

/* Latency figures in ms: p50, p99, max. */
static void bench_set_dist(json_object *o, double *v, size_t n)
{
    bench_set(o, "p50_ms", bench_pct(v, n, 0.50));
    bench_set(o, "p99_ms", bench_pct(v, n, 0.99));
    bench_set(o, "max_ms", n > 0 ? v[n - 1] : NAN);
    bench_set_int(o, "samples", (int64_t) n);
}

static int bench_sample(bench_t *b, bench_usage_t *u)
{
    int rc;

    rc = bench_proc_usage(b->o->roots, b->o->nroots, u);
    if (rc < 0) {
        snprintf(b->err, sizeof(b->err), "reading /proc: %s",
            strerror(-rc));
    }
    return rc;
}

/*
 * CPU seconds between two samples: schedstat's nanoseconds for short
 * intervals, /proc/PID/stat's ticks when they are long enough to be
 * precise (those also count threads that exited in between).
 */
static double bench_cpu_delta(const bench_usage_t *a, const bench_usage_t *b)
{
    double ticks = b->cpu_s - a->cpu_s;
    double sched = b->cpu_sched_s - a->cpu_sched_s;

    return ticks >= 2.0 || sched < 0 ? ticks : sched;
}

/* Where the CPU went, by role (live threads only, so a lower bound). */
static void bench_set_roles(json_object *o, const bench_usage_t *a,
    const bench_usage_t *b)
{
    json_object *roles = json_object_new_object();

    for (int r = 0; r < BENCH_ROLE_COUNT; r++) {
        bench_set(roles, bench_role_names[r],
            b->role_cpu_sched_s[r] - a->role_cpu_sched_s[r]);
    }
    json_object_object_add(o, "cpu_s_by_role", roles);
}

static void bench_sleep_until(int64_t t_ns)
{
    struct timespec ts = {
        .tv_sec = t_ns / 1000000000,
        .tv_nsec = t_ns % 1000000000,
    };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
        == EINTR)
    {
    }
}

static void bench_sleep_s(double s)
{
    bench_sleep_until(bench_now_ns() + (int64_t) (s * 1e9));
}

static int bench_phase_open(bench_t *b, json_object *o)
{
    bench_usage_t before, after;
    bench_fleet_stats_t st;
    double *open_ms;
    int n = b->o->subscribers, rc;

    open_ms = calloc((size_t) n, sizeof(*open_ms));
    if (open_ms == NULL) {
        return -ENOMEM;
    }

    rc = bench_sample(b, &before);
    if (rc < 0) {
        goto out_free;
    }

    rc = bench_fleet_connect(b->fleet, b->err, sizeof(b->err));
    if (rc < 0) {
        goto out_free;
    }

    rc = bench_fleet_open(b->fleet, open_ms, b->o->timeout_ms, b->err,
        sizeof(b->err));
    if (rc < 0) {
        goto out_free;
    }

    /* Let allocators and the kernel settle before reading memory. */
    bench_sleep_s(1.0);
    rc = bench_sample(b, &after);
    if (rc < 0) {
        goto out_free;
    }

    bench_fleet_stats(b->fleet, &st);
    bench_set_int(o, "settings", st.settings);
    bench_set_dist(o, open_ms, (size_t) n);
    bench_fleet_floor_ms(b->fleet, open_ms);
    bench_set(o, "unary_floor_p50_ms", bench_pct(open_ms, (size_t) n, 0.5));
    bench_set_int(o, "rss_idle_kb", before.rss_kb);
    bench_set_int(o, "rss_loaded_kb", after.rss_kb);
    bench_set(o, "rss_per_subscriber_kb",
        (double) (after.rss_kb - before.rss_kb) / n);
    bench_set_int(o, "processes", after.nproc);

out_free:
    free(open_ms);
    return rc;
}

static int bench_phase_idle(bench_t *b, json_object *o)
{
    bench_usage_t u0, u1;
    int64_t t0, t1;
    int rc;

    rc = bench_sample(b, &u0);
    t0 = bench_now_ns();
    if (rc < 0) {
        return rc;
    }

    bench_sleep_s(b->o->idle_s);
    rc = bench_sample(b, &u1);
    t1 = bench_now_ns();
    if (rc < 0) {
        return rc;
    }

    bench_set(o, "seconds", (double) (t1 - t0) / 1e9);
    bench_set(o, "cpu_s", bench_cpu_delta(&u0, &u1));
    bench_set(o, "core_pct",
        100.0 * bench_cpu_delta(&u0, &u1) / ((double) (t1 - t0) / 1e9));
    bench_set_roles(o, &u0, &u1);
    return 0;
}

/* The frontends' memory, or the whole server's when it has none. */
static long bench_frontend_kb(const bench_usage_t *u)
{
    return u->frontend_rss_kb > 0 ? u->frontend_rss_kb : u->rss_kb;
}

/*
 * Make count changes, paced at hz (0: back to back), then wait for every
 * reading subscriber to have the last one. ch gets each change's id and
 * send time. A frontend memory peak is sampled every 250 changes.
 */
static int bench_run_changes(bench_t *b, int count, double hz,
    bench_change_t *ch, long *peak_frontend_kb)
{
    int64_t period = hz > 0 ? (int64_t) (1e9 / hz) : 0, start;
    bench_usage_t u;
    int rc;

    rc = bench_fleet_window(b->fleet, bench_fleet_head(b->fleet) + 1,
        (size_t) count + 64);
    if (rc < 0) {
        snprintf(b->err, sizeof(b->err), "out of memory");
        return rc;
    }

    start = bench_now_ns();
    for (int i = 0; i < count; i++) {
        if (period > 0) {
            bench_sleep_until(start + period * i);
        }

        ch[i].t_send = bench_now_ns();
        rc = bench_driver_change(b->driver, &ch[i].seq, b->err,
            sizeof(b->err));
        if (rc < 0) {
            return rc;
        }
        ch[i].t_ack = bench_now_ns();

        if (peak_frontend_kb != NULL && i % 250 == 0
            && bench_proc_usage(b->o->roots, b->o->nroots, &u) == 0
            && bench_frontend_kb(&u) > *peak_frontend_kb)
        {
            *peak_frontend_kb = bench_frontend_kb(&u);
        }
    }

    rc = bench_fleet_wait(b->fleet, ch[count - 1].seq, BENCH_WAIT_MS);
    if (rc < 0) {
        snprintf(b->err, sizeof(b->err),
            "subscribers did not all get change %lld within %d s",
            (long long) ch[count - 1].seq, BENCH_WAIT_MS / 1000);
    }
    return rc;
}

/*
 * Propagation (send to last reading subscriber) of each change, in ms;
 * ack gets each change's commit round trip as the driver saw it.
 */
static size_t bench_propagation(bench_t *b, const bench_change_t *ch,
    int count, double *lat, double *ack)
{
    uint32_t have;
    size_t n = 0;
    int64_t t;

    for (int i = 0; i < count; i++) {
        t = bench_fleet_last(b->fleet, ch[i].seq, &have);
        if (t > 0) {
            lat[n++] = (double) (t - ch[i].t_send) / 1e6;
        }
        ack[i] = (double) (ch[i].t_ack - ch[i].t_send) / 1e6;
    }
    return n;
}

static void bench_set_ack(json_object *o, double *ack, int count)
{
    bench_set(o, "commit_p50_ms", bench_pct(ack, (size_t) count, 0.50));
    bench_set(o, "commit_p99_ms", bench_pct(ack, (size_t) count, 0.99));
}

/* CPU seconds this process (the load generator) used so far. */
static double bench_self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
        + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int bench_phase_changes(bench_t *b, json_object *o, int count,
    double hz)
{
    bench_fleet_stats_t st0, st1;
    double self0, self1;
    bench_usage_t u0, u1;
    bench_change_t *ch;
    int64_t t0, t1;
    double *lat, *ack, cpu;
    size_t n;
    int rc;

    ch = calloc((size_t) count, sizeof(*ch));
    lat = calloc((size_t) count, sizeof(*lat));
    ack = calloc((size_t) count, sizeof(*ack));
    if (ch == NULL || lat == NULL || ack == NULL) {
        rc = -ENOMEM;
        goto out_free;
    }

    rc = bench_sample(b, &u0);
    if (rc < 0) {
        goto out_free;
    }

    bench_fleet_stats(b->fleet, &st0);
    self0 = bench_self_cpu_s();
    t0 = bench_now_ns();
    rc = bench_run_changes(b, count, hz, ch, NULL);
    t1 = bench_now_ns();
    self1 = bench_self_cpu_s();
    bench_fleet_stats(b->fleet, &st1);
    if (rc < 0) {
        goto out_free;
    }

    rc = bench_sample(b, &u1);
    if (rc < 0) {
        goto out_free;
    }

    cpu = bench_cpu_delta(&u0, &u1);
    n = bench_propagation(b, ch, count, lat, ack);
    bench_set_int(o, "updates", count);
    bench_set(o, "seconds", (double) (t1 - t0) / 1e9);
    bench_set(o, "cpu_s", cpu);
    bench_set(o, "cpu_us_per_delivery",
        cpu * 1e6 / ((double) count * b->o->subscribers));
    bench_set(o, "client_cpu_us_per_delivery",
        (self1 - self0) * 1e6 / ((double) count * b->o->subscribers));
    /*
     * A subscriber that falls behind is resynced: it gets one snapshot in
     * place of the updates it missed. Per message it actually received,
     * the CPU is higher than per change and subscriber.
     */
    bench_set_int(o, "received", (int64_t) (st1.events - st0.events));
    bench_set_int(o, "resyncs", (int64_t) (st1.resyncs - st0.resyncs));
    if (st1.events > st0.events) {
        bench_set(o, "cpu_us_per_received",
            cpu * 1e6 / (double) (st1.events - st0.events));
    }
    bench_set_roles(o, &u0, &u1);
    bench_set_dist(o, lat, n);
    bench_set_ack(o, ack, count);

out_free:
    free(ch);
    free(lat);
    free(ack);
    return rc;
}

static int bench_phase_slow_run(bench_t *b, json_object *o, int count,
    int stall)
{
    bench_usage_t u0;
    bench_change_t *ch;
    long peak;
    double *lat, *ack;
    size_t n;
    int rc;

    ch = calloc((size_t) count, sizeof(*ch));
    lat = calloc((size_t) count, sizeof(*lat));
    ack = calloc((size_t) count, sizeof(*ack));
    if (ch == NULL || lat == NULL || ack == NULL) {
        rc = -ENOMEM;
        goto out_free;
    }

    if (stall) {
        bench_fleet_stall(b->fleet, 0);
    }

    rc = bench_sample(b, &u0);
    if (rc < 0) {
        goto out_free;
    }

    peak = bench_frontend_kb(&u0);
    rc = bench_run_changes(b, count, 0, ch, &peak);
    if (rc < 0) {
        goto out_free;
    }

    n = bench_propagation(b, ch, count, lat, ack);
    bench_set_int(o, "updates", count);
    bench_set_int(o, "frontend_rss_before_kb", bench_frontend_kb(&u0));
    bench_set_int(o, "frontend_rss_peak_kb", peak);
    bench_set_int(o, "frontend_growth_kb", peak - bench_frontend_kb(&u0));
    bench_set_dist(o, lat, n);
    bench_set_ack(o, ack, count);

out_free:
    free(ch);
    free(lat);
    free(ack);
    return rc;
}

static int bench_phase_slow(bench_t *b, json_object *o)
{
    json_object *base, *slow;
    double p_base, p_slow;
    int rc;

    if (b->o->subscribers < 2) {
        snprintf(b->err, sizeof(b->err), "slow needs 2 subscribers");
        return -EINVAL;
    }

    base = json_object_new_object();
    slow = json_object_new_object();
    json_object_object_add(o, "all_reading", base);
    json_object_object_add(o, "one_stalled", slow);

    rc = bench_phase_slow_run(b, base, b->o->slow_updates, 0);
    if (rc < 0) {
        return rc;
    }

    rc = bench_phase_slow_run(b, slow, b->o->slow_updates, 1);
    if (rc < 0) {
        return rc;
    }

    p_base = json_object_get_double(json_object_object_get(base, "p99_ms"));
    p_slow = json_object_get_double(json_object_object_get(slow, "p99_ms"));
    bench_set_int(o, "frontend_growth_kb", json_object_get_int64(
        json_object_object_get(slow, "frontend_growth_kb")));
    bench_set(o, "others_p99_ms", p_slow);
    bench_set(o, "others_p99_ratio", p_base > 0 ? p_slow / p_base : NAN);
    return 0;
}

static int bench_phase_rate(bench_t *b, json_object *o)
{
    int64_t t0, t_end, t_last, seq = 0, first = -1;
    uint32_t have;
    size_t cap = 4000000;
    int count = 0, rc;
    char *err = b->err;

    rc = bench_fleet_window(b->fleet, bench_fleet_head(b->fleet) + 1, cap);
    if (rc < 0) {
        return rc;
    }

    t0 = bench_now_ns();
    t_end = t0 + (int64_t) (b->o->rate_s * 1e9);
    while (bench_now_ns() < t_end && (size_t) count < cap - 64) {
        rc = bench_driver_change(b->driver, &seq, err, BENCH_ERR_MAX);
        if (rc < 0) {
            return rc;
        }
        if (first < 0) {
            first = seq;
        }
        count++;
    }

    if (count == 0) {
        snprintf(err, BENCH_ERR_MAX, "no change made");
        return -EIO;
    }

    rc = bench_fleet_wait(b->fleet, seq, BENCH_WAIT_MS);
    if (rc < 0) {
        snprintf(err, BENCH_ERR_MAX, "subscribers fell behind for good");
        return rc;
    }

    t_last = bench_fleet_last(b->fleet, seq, &have);
    bench_set_int(o, "changes", count);
    bench_set(o, "seconds", (double) (t_last - t0) / 1e9);
    bench_set(o, "changes_per_s", (double) count / ((double) (t_last - t0)
        / 1e9));
    bench_set(o, "set_rate_per_s", (double) count / b->o->rate_s);
    return 0;
}

/* etcd: put the keys a snapshot is made of under the watched prefix. */
static int bench_preload(bench_t *b, grpc_channel *ch)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    char key[256], value[64];
    grpc_slice out;
    int rc;

    for (int i = 0; i < b->o->preload; i++) {
        snprintf(key, sizeof(key), "%skey-%06d", b->o->prefix, i);
        snprintf(value, sizeof(value), "{\"value\":%d,\"source\":\"file\"}",
            i);
        req.key.data = (uint8_t *) key;
        req.key.len = strlen(key);
        req.value.data = (uint8_t *) value;
        req.value.len = strlen(value);
        rc = bench_grpc_unary(ch, "/etcdserverpb.KV/Put", NULL, 0,
            &req.base, &out, 10000, b->err, sizeof(b->err));
        if (rc < 0) {
            return rc;
        }
        grpc_slice_unref(out);
    }
    return 0;
}

static int bench_read_token(const char *path, char **token, char *err,
    size_t errlen)
{
    char buf[512];
    size_t len;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }

    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '
        || buf[len - 1] == '\r'))
    {
        len--;
    }
    buf[len] = '\0';
    if (len == 0) {
        snprintf(err, errlen, "%s: empty token", path);
        return -EINVAL;
    }

    *token = strdup(buf);
    return *token != NULL ? 0 : -ENOMEM;
}

static void bench_raise_fd_limit(void)
{
    struct rlimit rl;

    /* One socket per subscriber, plus gRPC's own descriptors. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

typedef int (*bench_phase_fn)(bench_t *b, json_object *o);

static int bench_run_phase(bench_t *b, const char *name, bench_phase_fn fn)
{
    json_object *o = json_object_new_object();
    int rc;

    fprintf(stderr, "configstream-bench: %s, %d subscribers\n", name,
        b->o->subscribers);
    json_object_object_add(b->out, name, o);
    rc = fn(b, o);
    if (rc < 0) {
        json_object_object_add(b->out, "error",
            json_object_new_string(b->err));
        fprintf(stderr, "configstream-bench: %s: %s\n", name, b->err);
    }
    return rc;
}

static int bench_phase_paced(bench_t *b, json_object *o)
{
    bench_set(o, "rate_hz", b->o->rate_hz);
    return bench_phase_changes(b, o, b->o->updates, b->o->rate_hz);
}

static int bench_phase_burst(bench_t *b, json_object *o)
{
    return bench_phase_changes(b, o, b->o->burst, 0);
}

static int bench_run(bench_t *b, grpc_channel_credentials *creds,
    const char *token)
{
    static const struct {
        const char *name;
        bench_phase_fn fn;
    } phases[] = {
        { "idle", bench_phase_idle },
        { "paced", bench_phase_paced },
        { "burst", bench_phase_burst },
        { "slow", bench_phase_slow },
        { "rate", bench_phase_rate },
    };
    bench_opts_t *o = b->o;
    bench_fleet_opts_t fo = {
        .target = o->target,
        .address = o->address,
        .creds = creds,
        .token = token,
        .prefix = o->prefix,
        .subscribers = o->subscribers,
    };
    grpc_channel *driver_ch = NULL;
    char key[256];
    int rc;

    if (o->target == BENCH_TARGET_ETCD) {
        snprintf(key, sizeof(key), "%s~changing",
            o->key != NULL ? o->key : o->prefix);
        driver_ch = bench_grpc_channel(o->address, creds);
        rc = bench_preload(b, driver_ch);
        if (rc == 0) {
            rc = bench_driver_open_etcd(&b->driver, driver_ch, key, b->err,
                sizeof(b->err));
        }
    } else {
        rc = bench_driver_open_control(&b->driver, o->control_socket,
            o->key != NULL ? o->key : "dogstatsd_buffer_size", b->err,
            sizeof(b->err));
    }
    if (rc < 0) {
        goto out_driver;
    }

    rc = bench_fleet_create(&b->fleet, &fo, b->err, sizeof(b->err));
    if (rc < 0) {
        goto out_driver;
    }

    rc = bench_run_phase(b, "open", bench_phase_open);
    for (size_t i = 0; rc == 0 && i < sizeof(phases) / sizeof(phases[0]);
        i++)
    {
        if (bench_has_phase(o, phases[i].name)) {
            rc = bench_run_phase(b, phases[i].name, phases[i].fn);
        }
    }

    {
        bench_fleet_stats_t st;

        bench_fleet_stats(b->fleet, &st);
        bench_set_int(b->out, "events", (int64_t) st.events);
        bench_set_int(b->out, "resyncs", (int64_t) st.resyncs);
        bench_set_int(b->out, "gaps", (int64_t) st.gaps);
        bench_set_int(b->out, "closed_streams", st.closed);
    }
    bench_fleet_destroy(b->fleet);

out_driver:
    bench_driver_close(b->driver);
    if (driver_ch != NULL) {
        grpc_channel_destroy(driver_ch);
    }
    if (rc < 0 && json_object_object_get(b->out, "error") == NULL) {
        json_object_object_add(b->out, "error",
            json_object_new_string(b->err));
        fprintf(stderr, "configstream-bench: %s\n", b->err);
    }
    return rc;
}

int main(int argc, char **argv)
{
    grpc_channel_credentials *creds = NULL;
    bench_opts_t o;
    bench_t b = { .o = &o };
    char *token = NULL;
    int rc;

    if (bench_parse_args(argc, argv, &o) < 0) {
        bench_usage(stderr);
        return 2;
    }

    bench_raise_fd_limit();
    if (o.token_file != NULL
        && bench_read_token(o.token_file, &token, b.err, sizeof(b.err)) < 0)
    {
        fprintf(stderr, "configstream-bench: %s\n", b.err);
        return 1;
    }

    cs_grpc_lock_checks_off();
    grpc_init();
    rc = bench_grpc_creds(o.cert, &creds, b.err, sizeof(b.err));
    if (rc < 0) {
        fprintf(stderr, "configstream-bench: %s\n", b.err);
        goto out_grpc;
    }

    b.out = json_object_new_object();
    json_object_object_add(b.out, "target", json_object_new_string(
        o.target == BENCH_TARGET_ETCD ? "etcd" : "configstream"));
    bench_set_int(b.out, "subscribers", o.subscribers);
    rc = bench_run(&b, creds, token);
    printf("%s\n", json_object_to_json_string_ext(b.out,
        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(b.out);
    grpc_channel_credentials_release(creds);

out_grpc:
    grpc_shutdown_blocking();
    free(token);
    return rc < 0 ? 1 : 0;
}

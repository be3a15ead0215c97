/*
 * configstreamd's process table: one row per child (role, pid, state,
 * restarts, last start) and the state machine that starts, respawns and
 * stops them.
 *
 *   idle --spawn--> running --exit--> backoff --deadline--> running
 *                      |          \--exit 78--> fatal (never respawned)
 *                      +--stop--> stopping --exit--> stopped
 *
 * Back-off before a respawn starts at 100 ms and doubles up to 5 s; it
 * falls back to 100 ms once a child has stayed up for 10 s.
 *
 * Functions return 0 or a negative errno. Lifecycle lines (start, exit)
 * are logged here, since the table is the supervisor process's own.
 */
#ifndef CS_SUP_PROCTABLE_H
#define CS_SUP_PROCTABLE_H

#include <stdint.h>
#include <sys/types.h>

#define CS_SUP_BACKOFF_MIN_MS   100
#define CS_SUP_BACKOFF_MAX_MS   5000
#define CS_SUP_STABLE_MS        10000

typedef enum {
    CS_ROLE_BROKER = 0,
    CS_ROLE_RESOLVER,
    CS_ROLE_FRONTEND,
} cs_sup_role_t;

typedef enum {
    CS_CHILD_IDLE = 0,
    CS_CHILD_RUNNING,
    CS_CHILD_BACKOFF,
    CS_CHILD_STOPPING,
    CS_CHILD_STOPPED,
    CS_CHILD_FATAL,
} cs_sup_state_t;

typedef struct {
    cs_sup_role_t role;
    const char *name;           /* argv[0] and log name of the role */
    const char *path;           /* executable */
    int index;                  /* frontend number, 0 for the others */
    pid_t pid;                  /* 0 when not running */
    cs_sup_state_t state;
    unsigned restarts;
    int64_t started_ms;         /* last start, CLOCK_MONOTONIC */
    int64_t backoff_ms;         /* wait before the next respawn */
    int64_t respawn_at_ms;      /* in backoff: when to respawn */
    int last_status;            /* last wait status */
} cs_sup_child_t;

typedef struct {
    cs_sup_child_t *rows;
    int count;
    char *const *args;          /* arguments after argv[0], NULL-ended */
    const char *table_path;     /* where the table is written, or NULL */
} cs_sup_table_t;

int64_t cs_sup_now_ms(void);

const char *cs_sup_state_name(cs_sup_state_t state);

/* "TERM" for SIGTERM; "?" for a signal without a name. */
const char *cs_sup_signal_name(int sig);

/* The back-off that follows one of prev_ms: doubled, within bounds. */
int64_t cs_sup_backoff_next(int64_t prev_ms);

/* Fork and exec c with the table's arguments; c becomes running. */
int cs_sup_child_spawn(cs_sup_table_t *t, cs_sup_child_t *c, int64_t now);

/*
 * Reap every exited child (waitpid WNOHANG), log its exit and move its
 * row on. *fatal is set when a child exited with CS_EXIT_FATAL_CONFIG.
 * Returns the number of rows that changed.
 */
int cs_sup_table_reap(cs_sup_table_t *t, int64_t now, int *fatal);

/* Respawn the rows whose back-off has passed; the earliest pending
 * deadline is returned in *next_ms (-1: none). */
void cs_sup_table_respawn(cs_sup_table_t *t, int64_t now, int64_t *next_ms);

/* Send sig to the running rows of a role; returns how many got it. */
int cs_sup_table_signal(cs_sup_table_t *t, cs_sup_role_t role, int sig);

/*
 * Stop the rows of role: running ones become stopping and get sig (as do
 * rows already stopping), rows waiting to respawn become stopped. Returns
 * how many are still alive.
 */
int cs_sup_table_stop(cs_sup_table_t *t, cs_sup_role_t role, int sig);

/* Rows of role still alive (running or stopping). */
int cs_sup_table_alive(const cs_sup_table_t *t, cs_sup_role_t role);

/* Write the table to t->table_path (temporary file, then rename). */
void cs_sup_table_write(const cs_sup_table_t *t);

#endif /* CS_SUP_PROCTABLE_H */

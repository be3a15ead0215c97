/*
 * Process logging: one line per event on stderr, in a format that can be
 * grepped across every configstream process:
 *
 *   2026-12-03T12:54:23.123Z configstream-resolver[4242] error store: mdb_txn_commit: No space left on device
 *
 * Policy, by level:
 *   error   configuration errors (with file:line:column), failed system
 *           calls (the call named, with its errno text)
 *   warn    degraded but serving (a peer we depend on is gone, a retry)
 *   notice  process lifecycle: start, ready, reload, signal, child exit
 *   info    peer-caused network errors, subscriber joins and leaves
 *   debug   per-request detail
 *
 * Messages are lowercase, name the failed call, carry no trailing period
 * and no newline. Secrets (API keys, tokens, full session ids) never reach
 * a log line. Modules return error codes; the process that called them
 * logs once, with context.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>

typedef enum {
    CS_LOG_ERROR = 0,
    CS_LOG_WARN,
    CS_LOG_NOTICE,
    CS_LOG_INFO,
    CS_LOG_DEBUG
} cs_log_level_t;

/* Set the role name printed on every line (the program name). */
void cs_log_init(const char *role);

/* Lines above this level are dropped; the default is CS_LOG_INFO. */
void cs_log_set_level(cs_log_level_t level);
cs_log_level_t cs_log_get_level(void);

/*
 * Parse a log_level setting: trace, debug, info, warn, warning, error,
 * critical, off (any case). Returns 0, or -EINVAL for an unknown name.
 * "off" maps to CS_LOG_ERROR (errors are always reported).
 */
int cs_log_level_parse(const char *name, cs_log_level_t *level);

void cs_log(cs_log_level_t level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cs_vlog(cs_log_level_t level, const char *subsys, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

#define cs_log_error(sub, ...)  cs_log(CS_LOG_ERROR, sub, __VA_ARGS__)
#define cs_log_warn(sub, ...)   cs_log(CS_LOG_WARN, sub, __VA_ARGS__)
#define cs_log_notice(sub, ...) cs_log(CS_LOG_NOTICE, sub, __VA_ARGS__)
#define cs_log_info(sub, ...)   cs_log(CS_LOG_INFO, sub, __VA_ARGS__)
#define cs_log_debug(sub, ...)                                              \
    do {                                                                    \
        if (cs_log_get_level() >= CS_LOG_DEBUG) {                           \
            cs_log(CS_LOG_DEBUG, sub, __VA_ARGS__);                         \
        }                                                                   \
    } while (0)

#endif /* CS_LOG_H */

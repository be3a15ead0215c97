/*
 * Line-oriented stderr logging. Each line is formatted into one buffer and
 * written with a single write(2), so lines from the processes of a group
 * sharing one stderr never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CS_LOG_LINE_MAX 2048

static const char *log_role = "configstream";
static cs_log_level_t log_level = CS_LOG_INFO;

static const char *const log_level_names[] = {
    "error", "warn", "notice", "info", "debug"
};

void
cs_log_init(const char *role)
{
    const char *slash;

    slash = strrchr(role, '/');
    log_role = slash ? slash + 1 : role;
}

void
cs_log_set_level(cs_log_level_t level)
{
    log_level = level;
}

cs_log_level_t
cs_log_get_level(void)
{
    return log_level;
}

int
cs_log_level_parse(const char *name, cs_log_level_t *level)
{
    static const struct {
        const char *name;
        cs_log_level_t level;
    } map[] = {
        { "trace", CS_LOG_DEBUG }, { "debug", CS_LOG_DEBUG },
        { "info", CS_LOG_INFO }, { "warn", CS_LOG_WARN },
        { "warning", CS_LOG_WARN }, { "error", CS_LOG_ERROR },
        { "critical", CS_LOG_ERROR }, { "off", CS_LOG_ERROR },
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(name, map[i].name) == 0) {
            *level = map[i].level;
            return 0;
        }
    }

    return -EINVAL;
}

void
cs_vlog(cs_log_level_t level, const char *subsys, const char *fmt,
    va_list ap)
{
    char line[CS_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int rc, saved_errno;
    char *p;

    if (level > log_level) {
        return;
    }

    saved_errno = errno;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    rc = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld] %s %s: ",
                  ts.tv_nsec / 1000000, log_role, (long) getpid(),
                  log_level_names[level], subsys);
    if (rc > 0) {
        n += (size_t) rc;
    }

    if (n < sizeof(line)) {
        rc = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (rc > 0) {
            n += (size_t) rc < sizeof(line) - n ? (size_t) rc
                                                 : sizeof(line) - n - 1;
        }
    }

    /* One line per event, whatever the message held. */
    for (p = line; p < line + n; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }

    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }
    line[n++] = '\n';

    while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR) {
        /* retry */
    }

    errno = saved_errno;
}

void
cs_log(cs_log_level_t level, const char *subsys, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cs_vlog(level, subsys, fmt, ap);
    va_end(ap);
}

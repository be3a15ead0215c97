/*
 * The log line format operators grep across processes, and level
 * filtering.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* Run fn with stderr redirected to a temporary file; return its text. */
static char *
capture(void (*fn)(void))
{
    char path[] = "/tmp/cs-test-log-XXXXXX";
    static char buf[8192];
    int fd, saved;
    ssize_t n;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);

    saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);

    lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';

    return buf;
}

static void
log_two_lines(void)
{
    cs_log_init("/usr/bin/configstream-test");
    cs_log_set_level(CS_LOG_INFO);
    cs_log_error("store", "mdb_env_open: %s", strerror(ENOSPC));
    cs_log_info("grpc", "peer said\nsomething");
    cs_log_debug("grpc", "dropped at info level");
}

static void
test_line_format(void **state)
{
    char expect[64], *out, *second;

    (void) state;
    out = capture(log_two_lines);

    snprintf(expect, sizeof(expect), " configstream-test[%ld] error store: ",
             (long) getpid());
    assert_non_null(strstr(out, expect));
    assert_non_null(strstr(out, "mdb_env_open: No space left on device\n"));
    assert_true(out[4] == '-' && out[10] == 'T' && out[23] == 'Z');

    /* An embedded newline never splits a line. */
    second = strchr(out, '\n') + 1;
    assert_non_null(strstr(second, "info grpc: peer said something\n"));
    assert_string_equal(strchr(second, '\n'), "\n");
    assert_null(strstr(out, "dropped"));
}

static void
test_level_names(void **state)
{
    cs_log_level_t l;

    (void) state;
    assert_int_equal(cs_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, CS_LOG_DEBUG);
    assert_int_equal(cs_log_level_parse("warning", &l), 0);
    assert_int_equal(l, CS_LOG_WARN);
    assert_int_equal(cs_log_level_parse("critical", &l), 0);
    assert_int_equal(l, CS_LOG_ERROR);
    assert_int_equal(cs_log_level_parse("loud", &l), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_level_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Directory watches and the reload debounce (see watch.h).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "watch.h"

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO    \
    | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF               \
    | IN_MOVE_SELF | IN_ONLYDIR)

typedef struct {
    char *path;
    int wd;                     /* -1: not watched (absent) */
    int any;                    /* every name in it is relevant */
} watch_dir_t;

struct cs_watch {
    int ifd;
    int tfd;
    unsigned debounce_ms;
    watch_dir_t *dirs;
    size_t ndirs;
    char **names;               /* base names of the watched files */
    size_t nnames;
};

int
cs_watch_open(cs_watch_t **wp, unsigned debounce_ms)
{
    cs_watch_t *w;
    int rc;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    w->debounce_ms = debounce_ms;

    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0) {
        rc = -errno;
        goto out_free;
    }

    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->tfd < 0) {
        rc = -errno;
        goto out_close_inotify;
    }

    *wp = w;

    return 0;

out_close_inotify:
    close(w->ifd);
out_free:
    free(w);

    return rc;
}

static void
watch_dirs_free(watch_dir_t *dirs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(dirs[i].path);
    }
    free(dirs);
}

static void
watch_names_free(char **names, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

void
cs_watch_close(cs_watch_t *w)
{
    if (w == NULL) {
        return;
    }

    close(w->tfd);
    close(w->ifd);
    watch_dirs_free(w->dirs, w->ndirs);
    watch_names_free(w->names, w->nnames);
    free(w);
}

/* Add path to the list unless present; any is or-ed into an existing. */
static int
watch_dir_add(watch_dir_t **dirs, size_t *n, const char *path, int any)
{
    watch_dir_t *d;
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strcmp((*dirs)[i].path, path) == 0) {
            (*dirs)[i].any |= any;
            return 0;
        }
    }

    d = realloc(*dirs, (*n + 1) * sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    *dirs = d;

    d[*n].path = strdup(path);
    if (d[*n].path == NULL) {
        return -ENOMEM;
    }
    d[*n].wd = -1;
    d[*n].any = any;
    (*n)++;

    return 0;
}

static int
watch_name_add(char ***names, size_t *n, const char *name)
{
    char **p;
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strcmp((*names)[i], name) == 0) {
            return 0;
        }
    }

    p = realloc(*names, (*n + 1) * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    *names = p;

    p[*n] = strdup(name);
    if (p[*n] == NULL) {
        return -ENOMEM;
    }
    (*n)++;

    return 0;
}

/* The directory and base name of path go into the new sets. */
static int
watch_file_add(watch_dir_t **dirs, size_t *ndirs, char ***names,
    size_t *nnames, const char *path)
{
    char dbuf[PATH_MAX], bbuf[PATH_MAX];
    int rc;

    if (strlen(path) >= sizeof(dbuf)) {
        return -ENAMETOOLONG;
    }
    strcpy(dbuf, path);
    strcpy(bbuf, path);

    rc = watch_dir_add(dirs, ndirs, dirname(dbuf), 0);
    if (rc != 0) {
        return rc;
    }

    return watch_name_add(names, nnames, basename(bbuf));
}

static int
watch_wd_used(const watch_dir_t *dirs, size_t n, int wd)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (dirs[i].wd == wd) {
            return 1;
        }
    }

    return 0;
}

int
cs_watch_set(cs_watch_t *w, const char *const *files, size_t nfiles,
    const char *const *dirs, size_t ndirs)
{
    watch_dir_t *nd = NULL;
    char **nn = NULL;
    size_t nnd = 0, nnn = 0, i;
    char *real;
    int rc = 0;

    for (i = 0; i < nfiles && rc == 0; i++) {
        rc = watch_file_add(&nd, &nnd, &nn, &nnn, files[i]);
        real = realpath(files[i], NULL);
        if (rc == 0 && real != NULL && strcmp(real, files[i]) != 0) {
            rc = watch_file_add(&nd, &nnd, &nn, &nnn, real);
        }
        free(real);
    }
    for (i = 0; i < ndirs && rc == 0; i++) {
        rc = watch_dir_add(&nd, &nnd, dirs[i], 1);
    }
    if (rc != 0) {
        goto out_free;
    }

    /*
     * Add every watch of the new set before dropping the old ones: the
     * kernel hands the same descriptor back for a directory already
     * watched, and no event is lost in between.
     */
    for (i = 0; i < nnd; i++) {
        nd[i].wd = inotify_add_watch(w->ifd, nd[i].path, WATCH_MASK);
    }
    for (i = 0; i < w->ndirs; i++) {
        if (w->dirs[i].wd >= 0 && !watch_wd_used(nd, nnd, w->dirs[i].wd)) {
            inotify_rm_watch(w->ifd, w->dirs[i].wd);
        }
    }

    watch_dirs_free(w->dirs, w->ndirs);
    watch_names_free(w->names, w->nnames);
    w->dirs = nd;
    w->ndirs = nnd;
    w->names = nn;
    w->nnames = nnn;

    return 0;

out_free:
    watch_dirs_free(nd, nnd);
    watch_names_free(nn, nnn);

    return rc;
}

int
cs_watch_fd(cs_watch_t *w)
{
    return w->ifd;
}

int
cs_watch_timer_fd(cs_watch_t *w)
{
    return w->tfd;
}

static int
watch_event_relevant(cs_watch_t *w, const struct inotify_event *ev)
{
    size_t i;
    int any = 0, found = 0;

    for (i = 0; i < w->ndirs; i++) {
        if (w->dirs[i].wd == ev->wd) {
            found = 1;
            any |= w->dirs[i].any;
        }
    }

    /* A watched directory went away: reload, which re-arms. */
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF
        | IN_Q_OVERFLOW))
    {
        return 1;
    }
    if (!found) {
        return 0;
    }
    if (any || ev->len == 0) {
        return 1;
    }
    if (strncmp(ev->name, "..", 2) == 0) {
        return 1;
    }
    for (i = 0; i < w->nnames; i++) {
        if (strcmp(w->names[i], ev->name) == 0) {
            return 1;
        }
    }

    return 0;
}

static int
watch_arm(cs_watch_t *w)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = w->debounce_ms / 1000;
    its.it_value.tv_nsec = (long) (w->debounce_ms % 1000) * 1000000L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1;
    }

    if (timerfd_settime(w->tfd, 0, &its, NULL) != 0) {
        return -errno;
    }

    return 0;
}

int
cs_watch_handle(cs_watch_t *w)
{
    char buf[16384]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    const struct inotify_event *ev;
    ssize_t n;
    char *p;
    int relevant = 0;

    for (;;) {
        n = read(w->ifd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
            ev = (const struct inotify_event *) p;
            relevant |= watch_event_relevant(w, ev);
        }
    }

    /* Each relevant event restarts the delay: reload once things settle. */
    return relevant ? watch_arm(w) : 0;
}

int
cs_watch_fired(cs_watch_t *w)
{
    uint64_t expirations;
    ssize_t n;

    n = read(w->tfd, &expirations, sizeof(expirations));

    return n == (ssize_t) sizeof(expirations) && expirations > 0;
}

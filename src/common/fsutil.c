/*
 * File-system helpers.
 */
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

static char fs_failed[PATH_MAX];

int
cs_mkdir_p(const char *path, mode_t mode, const char **failed)
{
    size_t len = strlen(path);
    char saved, *p;

    if (len == 0 || len >= sizeof(fs_failed)) {
        return -ENAMETOOLONG;
    }
    memcpy(fs_failed, path, len + 1);

    /* Walk the components, making each prefix that is not there yet. */
    for (p = fs_failed + 1; ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        saved = *p;
        *p = '\0';
        if (mkdir(fs_failed, mode) != 0 && errno != EEXIST) {
            if (failed != NULL) {
                *failed = fs_failed;
            }
            return -errno;
        }
        *p = saved;

        if (saved == '\0') {
            return 0;
        }
    }
}

int
cs_mkdir_parent(const char *file, mode_t mode, const char **failed)
{
    char dir[PATH_MAX];
    const char *slash;
    size_t len;

    slash = strrchr(file, '/');
    if (slash == NULL || slash == file) {
        return 0;
    }

    len = (size_t) (slash - file);
    if (len >= sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    memcpy(dir, file, len);
    dir[len] = '\0';

    return cs_mkdir_p(dir, mode, failed);
}

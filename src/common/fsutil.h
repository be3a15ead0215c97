/*
 * Small file-system helpers several processes share.
 *
 * Both return 0 or a negative errno; on failure, *failed (when not NULL)
 * points into a static buffer naming the directory that could not be
 * made, for the caller's error message.
 */
#ifndef CS_FSUTIL_H
#define CS_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: create path and its missing parents with mode. */
int cs_mkdir_p(const char *path, mode_t mode, const char **failed);

/* mkdir -p of the directory holding file (nothing for a bare name). */
int cs_mkdir_parent(const char *file, mode_t mode, const char **failed);

#endif /* CS_FSUTIL_H */

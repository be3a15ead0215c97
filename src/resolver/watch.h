/*
 * Watching the loaded files for changes, by the DIRECTORIES holding them.
 *
 * Watching a file's inode misses every way a file gets replaced rather
 * than rewritten: editors write a new file and rename it over the old one,
 * deployment tools swap symlinks (Kubernetes ConfigMaps swap a `..data`
 * link), files get deleted and recreated. A directory watch sees all of
 * them. For a file reached through a symlink the directory of its target
 * is watched too, so an in-place edit of the target is seen.
 *
 * Relevant events (on a watched file's name, on a `..`-prefixed name in
 * the same directory, or anything in a watched policy directory) arm a
 * debounce timer; cs_watch_timer_fd() becomes readable once no event came
 * for the debounce delay, and the caller reloads. The watch set is re-armed
 * by calling cs_watch_set() again (after each reload, since the set of
 * files or their symlink targets may have changed).
 *
 * Functions return 0 or a negative errno.
 */
#ifndef CS_WATCH_H
#define CS_WATCH_H

#include <stddef.h>

typedef struct cs_watch cs_watch_t;

int cs_watch_open(cs_watch_t **w, unsigned debounce_ms);
void cs_watch_close(cs_watch_t *w);

/*
 * Watch files (by their directories) and dirs (any change inside).
 * Directories that cannot be watched (absent) are skipped; a later call
 * picks them up.
 */
int cs_watch_set(cs_watch_t *w, const char *const *files, size_t nfiles,
    const char *const *dirs, size_t ndirs);

/* The inotify descriptor: call cs_watch_handle() when it is readable. */
int cs_watch_fd(cs_watch_t *w);
int cs_watch_handle(cs_watch_t *w);

/*
 * The debounce timer: when readable, cs_watch_fired() returns 1 (a reload
 * is due) and disarms it.
 */
int cs_watch_timer_fd(cs_watch_t *w);
int cs_watch_fired(cs_watch_t *w);

#endif /* CS_WATCH_H */

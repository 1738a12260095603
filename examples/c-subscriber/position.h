/* Crash-safe progress for the subscriber: the position file (highest seq handled, written atomically
 * with tmp + fsync + rename) and the output the event lines go to.
 *
 * Printing a line and saving the position cannot happen in one step. So the position file also
 * records the output file's identity and size right after the last saved line: a run killed between
 * printing and saving left bytes past that size, and the next run cuts them off before it replays
 * those events again. An output that is not a regular file (a pipe, a terminal) cannot be cut: there a
 * kill in that instant repeats one line. */
#ifndef RAMPART_EXAMPLE_POSITION_H
#define RAMPART_EXAMPLE_POSITION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    int fd;
    int owned;      /* opened by us (--out), closed by output_close */
    int regular;    /* a regular file: its size can be recorded and repaired */
    int repairable; /* regular, and not shared with stderr (diagnostics would move its size) */
    dev_t device;
    ino_t inode;
} Output;

typedef struct {
    uint64_t position;
    int has_output; /* the output fields below are known */
    uint64_t output_device;
    uint64_t output_inode;
    int64_t output_size;
} SavedPosition;

/* Opens `path` for appending (created if missing), or standard output when `path` is NULL. */
int output_open(Output *output, const char *path, char *error, size_t error_size);
void output_close(Output *output);

/* Writes the whole line, then (for a regular file) fdatasync: it is on disk before the position says so. */
int output_write(Output *output, const char *line, size_t length, char *error, size_t error_size);

/* Cuts off what a killed run printed after its last saved position; reports it on stderr. */
void output_repair(Output *output, const SavedPosition *saved);

/* Takes an exclusive lock next to the position file (PATH.lock) so that two runs never share it.
 * Returns the lock's descriptor, or -1 with `error` filled. */
int position_lock(const char *path, char *error, size_t error_size);

/* Reads the position file: 1 read, 0 there is none, -1 unreadable or damaged (`error` says why). */
int position_load(const char *path, SavedPosition *saved, char *error, size_t error_size);

/* Replaces the position file atomically: PATH.tmp written and fsynced, renamed over PATH, folder fsynced. */
int position_save(const char *path, uint64_t position, const Output *output, char *error, size_t error_size);

#endif

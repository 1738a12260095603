/* See position.h. The position file is text:
 *     position 1234
 *     output 2049 1311130 56789      (device, inode and size of the output file; "output - - -" if none) */
#define _GNU_SOURCE
#include "position.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int output_open(Output *output, const char *path, char *error, size_t error_size) {
    memset(output, 0, sizeof *output);
    if (path == NULL) {
        output->fd = STDOUT_FILENO;
    } else {
        output->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644); /* read: to count lines in output_repair */
        if (output->fd < 0) {
            snprintf(error, error_size, "cannot open %s: %s", path, strerror(errno));
            return -1;
        }
        output->owned = 1;
    }
    struct stat st;
    if (fstat(output->fd, &st) != 0) {
        snprintf(error, error_size, "cannot inspect the output: %s", strerror(errno));
        output_close(output);
        return -1;
    }
    output->regular = S_ISREG(st.st_mode);
    output->device = st.st_dev;
    output->inode = st.st_ino;
    struct stat err;
    int shared = fstat(STDERR_FILENO, &err) == 0 && err.st_dev == st.st_dev && err.st_ino == st.st_ino;
    output->repairable = output->regular && !shared;
    if (output->regular && shared)
        fprintf(stderr, "note: event lines and diagnostics share one file: a kill between printing an event and "
                        "saving the position may repeat that line (use --out FILE)\n");
    return 0;
}

void output_close(Output *output) {
    if (output->owned && output->fd >= 0) close(output->fd);
    output->fd = -1;
    output->owned = 0;
}

int output_write(Output *output, const char *line, size_t length, char *error, size_t error_size) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(output->fd, line + done, length - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(error, error_size, "cannot write an event line: %s", strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    if (output->regular && fdatasync(output->fd) != 0) {
        snprintf(error, error_size, "cannot sync the output: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void output_repair(Output *output, const SavedPosition *saved) {
    if (!saved->has_output || !output->regular) return;
    if (saved->output_device != (uint64_t)output->device || saved->output_inode != (uint64_t)output->inode) return;
    struct stat st;
    if (fstat(output->fd, &st) != 0) return;
    if (st.st_size < saved->output_size) {
        fprintf(stderr, "note: the output is shorter (%lld bytes) than when the position was saved (%lld): "
                        "truncated or rotated? Continuing after seq %" PRIu64 "\n",
                (long long)st.st_size, (long long)saved->output_size, saved->position);
        return;
    }
    if (st.st_size == saved->output_size) return;
    if (!output->repairable) return;
    /* Count the lines about to go, for the report. */
    long lines = 0;
    char buffer[4096];
    for (off_t at = saved->output_size; lines >= 0 && at < st.st_size;) {
        ssize_t n = pread(output->fd, buffer, sizeof buffer, at);
        if (n <= 0) {
            lines = -1; /* not readable (standard output opened write-only): count unknown */
            break;
        }
        for (ssize_t i = 0; i < n; i++) lines += buffer[i] == '\n';
        at += n;
    }
    if (ftruncate(output->fd, saved->output_size) != 0) {
        fprintf(stderr, "warning: cannot cut the output back to %lld bytes (%s): what was printed after seq %" PRIu64
                        " will appear twice\n",
                (long long)saved->output_size, strerror(errno), saved->position);
        return;
    }
    char counted[48] = "";
    if (lines >= 0) snprintf(counted, sizeof counted, " (%ld line(s))", lines);
    fprintf(stderr, "discarded %lld bytes%s printed after seq %" PRIu64
                    " but not saved: the previous run stopped in between; they are printed again now\n",
            (long long)(st.st_size - saved->output_size), counted, saved->position);
}

int position_lock(const char *path, char *error, size_t error_size) {
    char lock_path[4096];
    if (snprintf(lock_path, sizeof lock_path, "%s.lock", path) >= (int)sizeof lock_path) {
        snprintf(error, error_size, "position file path too long");
        return -1;
    }
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(error, error_size, "cannot open %s: %s", lock_path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(error, error_size, "%s is in use by another subscriber (%s)", path,
                 errno == EWOULDBLOCK ? "locked" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Parses an unsigned decimal number that fills the whole token. */
static int parse_u64(const char *token, uint64_t *value) {
    if (token == NULL || *token < '0' || *token > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(token, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
    *value = parsed;
    return 0;
}

int position_load(const char *path, SavedPosition *saved, char *error, size_t error_size) {
    memset(saved, 0, sizeof *saved);
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        if (errno == ENOENT) return 0;
        snprintf(error, error_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int has_position = 0, bad = 0;
    while (!bad && fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        char *key = strtok_r(line, " ", &save);
        if (key == NULL || key[0] == '#') continue;
        if (strcmp(key, "position") == 0) {
            bad = parse_u64(strtok_r(NULL, " ", &save), &saved->position) != 0;
            has_position = !bad;
        } else if (strcmp(key, "output") == 0) {
            char *device = strtok_r(NULL, " ", &save), *inode = strtok_r(NULL, " ", &save),
                 *size = strtok_r(NULL, " ", &save);
            uint64_t bytes = 0;
            if (device != NULL && strcmp(device, "-") == 0) continue;
            bad = parse_u64(device, &saved->output_device) != 0 || parse_u64(inode, &saved->output_inode) != 0 ||
                  parse_u64(size, &bytes) != 0 || bytes > INT64_MAX;
            saved->output_size = (int64_t)bytes;
            saved->has_output = !bad;
        }
    }
    int read_error = ferror(file);
    fclose(file);
    if (read_error || bad || !has_position) {
        snprintf(error, error_size, "%s is damaged (expected a line \"position N\"); fix or delete it to start over",
                 path);
        return -1;
    }
    return 1;
}

int position_save(const char *path, uint64_t position, const Output *output, char *error, size_t error_size) {
    char content[256];
    int length;
    struct stat st;
    if (output->regular && fstat(output->fd, &st) == 0) {
        length = snprintf(content, sizeof content, "position %" PRIu64 "\noutput %llu %llu %lld\n", position,
                          (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size);
    } else {
        length = snprintf(content, sizeof content, "position %" PRIu64 "\noutput - - -\n", position);
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(error, error_size, "position file path too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(error, error_size, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    ssize_t written = write(fd, content, (size_t)length);
    int ok = written == length && fsync(fd) == 0;
    int saved_errno = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(error, error_size, "cannot save the position in %s: %s", path,
                 strerror(ok ? errno : (saved_errno ? saved_errno : EIO)));
        unlink(tmp);
        return -1;
    }
    /* Make the rename itself durable. */
    char folder_path[4096];
    snprintf(folder_path, sizeof folder_path, "%s", path);
    int folder = open(dirname(folder_path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (folder >= 0) {
        fsync(folder);
        close(folder);
    }
    return 0;
}

/* c-subscriber: follows the Rampart event stream and prints one line per event whose topic starts with a
 * prefix, each exactly once and in order, across gaps, publisher restarts and its own restarts.
 *
 * It is docs/protocol.md §11.5 in C with libzmq and protobuf-c (code generated from proto/ by protoc-c):
 *   - Journal/Info on service "bus.journal" gives the PUB endpoint and the journal's last seq;
 *   - a SUB socket subscribed to "" (everything, heartbeats included), so every seq arrives and a jump is
 *     a real gap; events of other topics are skipped locally but still advance the position;
 *   - Journal/Replay fills gaps, catches up after a start, and after a heartbeat that shows a lost tail;
 *   - the position (highest seq handled) is saved after each printed line (position.h explains how a
 *     kill between the two is repaired), so a restart misses nothing and repeats nothing.
 * Bad frames are reported on stderr and skipped: a skipped event is a gap, filled from the journal.
 *
 * Line format: SEQ  TOPIC  SUBJECT  key=value  key=value ...  (attributes sorted by key; control
 * characters and backslashes escaped as \xNN and \\, so one event is always one line). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus_client.h"
#include "position.h"
#include "rampart/bus/v1/bus.pb-c.h"

#define JOURNAL_SERVICE "bus.journal"
#define INFO_METHOD "rampart.bus.v1.Journal/Info"
#define REPLAY_METHOD "rampart.bus.v1.Journal/Replay"
#define HEARTBEAT_TOPIC "$heartbeat"
#define REPLAY_LIMIT 1000      /* <= 10000, so "fewer than REPLAY_LIMIT events" means "complete" */
#define SILENCE_MS 3000        /* the publisher beats every second: 3 s of nothing means trouble */
#define SAVE_INTERVAL_MS 1000  /* positions advanced by skipped events are saved at most this often */

enum { EXIT_OK = 0, EXIT_FAILURE_LOCAL = 1, EXIT_UNAVAILABLE = 5, EXIT_USAGE = 64 };

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

typedef struct {
    BusClient bus;
    void *sub;
    char endpoint[512];     /* where `sub` is connected */
    const char *prefix;
    size_t prefix_length;
    uint64_t position;      /* highest seq handled: printed, or skipped as not matching */
    int dirty;              /* position advanced since the last save */
    int64_t saved_at;       /* monotonic ms of the last save */
    const char *state_path; /* NULL: the position is not saved */
    Output output;
    int timeout_ms;
    long printed;           /* lines printed by this run */
    long count;             /* stop after this many (0: never) */
    long kill_after;        /* testing: SIGKILL itself after printing this many, before saving (0: never) */
    int done;
    int warned_behind;
    int pinned_endpoint;    /* --events: never follow Journal/Info elsewhere */
} Subscriber;

static int64_t monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- lines ---- */

typedef struct {
    char *data;
    size_t length, capacity;
} Buffer;

static int buffer_reserve(Buffer *buffer, size_t extra) {
    if (buffer->length + extra + 1 <= buffer->capacity) return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 256;
    while (capacity < buffer->length + extra + 1) capacity *= 2;
    char *data = realloc(buffer->data, capacity);
    if (data == NULL) return -1;
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

static int buffer_append(Buffer *buffer, const char *text, size_t length) {
    if (buffer_reserve(buffer, length) != 0) return -1;
    memcpy(buffer->data + buffer->length, text, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
    return 0;
}

/* Appends `text` with control characters and backslashes escaped, so that a line stays one line. */
static int buffer_append_escaped(Buffer *buffer, const char *text) {
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        char escaped[5];
        if (*c == '\\') {
            if (buffer_append(buffer, "\\\\", 2) != 0) return -1;
        } else if (*c < 0x20 || *c == 0x7f) {
            snprintf(escaped, sizeof escaped, "\\x%02x", *c);
            if (buffer_append(buffer, escaped, 4) != 0) return -1;
        } else if (buffer_append(buffer, (const char *)c, 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static int compare_attributes(const void *a, const void *b) {
    const Rampart__Bus__V1__Event__AttributesEntry *x = *(Rampart__Bus__V1__Event__AttributesEntry *const *)a;
    const Rampart__Bus__V1__Event__AttributesEntry *y = *(Rampart__Bus__V1__Event__AttributesEntry *const *)b;
    return strcmp(x->key, y->key);
}

/* "SEQ  TOPIC  SUBJECT  k=v  k=v\n" */
static int format_line(const Rampart__Bus__V1__Event *event, Buffer *line) {
    line->length = 0;
    char seq[32];
    int n = snprintf(seq, sizeof seq, "%" PRIu64 "  ", event->seq);
    if (buffer_append(line, seq, (size_t)n) != 0 || buffer_append_escaped(line, event->topic) != 0 ||
        buffer_append(line, "  ", 2) != 0 || buffer_append_escaped(line, event->subject[0] ? event->subject : "-") != 0)
        return -1;
    Rampart__Bus__V1__Event__AttributesEntry **sorted = NULL;
    if (event->n_attributes > 0) {
        sorted = malloc(event->n_attributes * sizeof *sorted);
        if (sorted == NULL) return -1;
        memcpy(sorted, event->attributes, event->n_attributes * sizeof *sorted);
        qsort(sorted, event->n_attributes, sizeof *sorted, compare_attributes);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < event->n_attributes; i++) {
        rc = buffer_append(line, "  ", 2) != 0 || buffer_append_escaped(line, sorted[i]->key) != 0 ||
             buffer_append(line, "=", 1) != 0 || buffer_append_escaped(line, sorted[i]->value) != 0;
    }
    free(sorted);
    return rc == 0 ? buffer_append(line, "\n", 1) : -1;
}

/* ---- handling events ---- */

static int save(Subscriber *s) {
    if (s->state_path == NULL || !s->dirty) return 0;
    char error[512];
    if (position_save(s->state_path, s->position, &s->output, error, sizeof error) != 0) {
        fprintf(stderr, "fatal: %s\n", error);
        return -1;
    }
    s->dirty = 0;
    s->saved_at = monotonic_ms();
    return 0;
}

/* The next event in seq order: advances the position; prints it when its topic matches. -1: fatal. */
static int handle(Subscriber *s, const Rampart__Bus__V1__Event *event) {
    s->position = event->seq;
    s->dirty = 1;
    if (strncmp(event->topic, s->prefix, s->prefix_length) != 0) return 0;
    Buffer line = {0};
    char error[512];
    if (format_line(event, &line) != 0) {
        free(line.data);
        fprintf(stderr, "fatal: out of memory\n");
        return -1;
    }
    int rc = output_write(&s->output, line.data, line.length, error, sizeof error);
    free(line.data);
    if (rc != 0) {
        fprintf(stderr, "fatal: %s\n", error);
        return -1;
    }
    s->printed++;
    if (s->kill_after > 0 && s->printed == s->kill_after) {
        fprintf(stderr, "test: SIGKILL after printing seq %" PRIu64 ", before saving the position\n", event->seq);
        raise(SIGKILL);
    }
    if (save(s) != 0) return -1;
    if (s->count > 0 && s->printed >= s->count) s->done = 1;
    return 0;
}

/* Handles every matching event after the position from the journal (protocol §11.4, §11.5).
 * Returns BUS_OK, another status when the journal could not be asked (the position keeps what was
 * handled), or -1 on a fatal local error. */
static int catch_up(Subscriber *s) {
    while (!s->done) {
        Rampart__Bus__V1__ReplayRequest request = RAMPART__BUS__V1__REPLAY_REQUEST__INIT;
        request.since_seq = s->position;
        request.topic_prefix = (char *)s->prefix;
        request.limit = REPLAY_LIMIT;
        ProtobufCMessage *answer = NULL;
        char message[512];
        int status = bus_call(&s->bus, JOURNAL_SERVICE, REPLAY_METHOD, &request.base,
                              &rampart__bus__v1__replay_response__descriptor, 1, s->timeout_ms, &answer, message,
                              sizeof message);
        if (status != BUS_OK) {
            if (status != BUS_CANCELLED)
                fprintf(stderr, "Journal/Replay after seq %" PRIu64 " failed: %s: %s\n", s->position,
                        bus_status_name(status), message);
            return status;
        }
        Rampart__Bus__V1__ReplayResponse *replay = (Rampart__Bus__V1__ReplayResponse *)answer;
        int rc = BUS_OK;
        for (size_t i = 0; i < replay->n_events && !s->done && rc == BUS_OK; i++) {
            if (replay->events[i]->seq > s->position && handle(s, replay->events[i]) != 0) rc = -1;
        }
        int complete = replay->n_events < REPLAY_LIMIT;
        if (rc == BUS_OK && complete && !s->done && replay->last_seq > s->position) {
            s->position = replay->last_seq; /* every matching event up to last_seq has been handled */
            s->dirty = 1;
        }
        protobuf_c_message_free_unpacked(answer, NULL);
        if (rc != BUS_OK || complete) return rc;
    }
    return BUS_OK;
}

static int valid_utf8(const uint8_t *bytes, size_t length) {
    for (size_t i = 0; i < length;) {
        uint8_t c = bytes[i];
        size_t extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 4;
        if (extra == 4 || extra >= length - i) return 0;
        for (size_t k = 1; k <= extra; k++)
            if ((bytes[i + k] & 0xc0) != 0x80) return 0;
        i += extra + 1;
    }
    return 1;
}

/* One message from the PUB socket. Sets *gap when the journal must be asked. -1: fatal. */
static int on_live(Subscriber *s, BusMessage *message, int *gap, int catch_up_due) {
    if (message->total != 2) {
        fprintf(stderr, "bad frame skipped: a message of %d frames (expected topic + body)\n", message->total);
        return 0;
    }
    const uint8_t *topic = bus_frame_data(message, 0), *body = bus_frame_data(message, 1);
    size_t topic_size = bus_frame_size(message, 0), body_size = bus_frame_size(message, 1);
    if (!valid_utf8(topic, topic_size)) {
        fprintf(stderr, "bad frame skipped: topic is not UTF-8 (%zu bytes)\n", topic_size);
        return 0;
    }
    if (topic_size == strlen(HEARTBEAT_TOPIC) && memcmp(topic, HEARTBEAT_TOPIC, topic_size) == 0) {
        Rampart__Bus__V1__PublisherHeartbeat *beat = rampart__bus__v1__publisher_heartbeat__unpack(NULL, body_size, body);
        if (beat == NULL) {
            fprintf(stderr, "bad frame skipped: undecodable PublisherHeartbeat (%zu bytes)\n", body_size);
            return 0;
        }
        if (beat->last_seq > s->position) {
            *gap = 1; /* missed the tail: slow joiner, dropped messages, a restart */
        } else if (beat->last_seq < s->position && !s->warned_behind) {
            fprintf(stderr, "warning: the journal ends at seq %" PRIu64 ", before our position %" PRIu64
                            ": a different or reset journal? Events up to our position will not be printed\n",
                    beat->last_seq, s->position);
            s->warned_behind = 1;
        }
        rampart__bus__v1__publisher_heartbeat__free_unpacked(beat, NULL);
        return 0;
    }
    Rampart__Bus__V1__Event *event = rampart__bus__v1__event__unpack(NULL, body_size, body);
    if (event == NULL) {
        fprintf(stderr, "bad frame skipped: undecodable Event on topic '%.*s' (%zu bytes)\n",
                (int)(topic_size > 200 ? 200 : topic_size), (const char *)topic, body_size);
        return 0; /* if it was a real event, its seq is now a gap: the journal has it */
    }
    int rc = 0;
    if (event->seq <= s->position) {
        /* seen already (a live copy of something replayed) */
    } else if (event->seq == s->position + 1 && !catch_up_due) {
        rc = handle(s, event);
    } else {
        *gap = 1; /* the replay includes this event */
    }
    rampart__bus__v1__event__free_unpacked(event, NULL);
    return rc;
}

/* Journal/Info: the PUB endpoint and the journal's end. Returns the status. */
static int journal_info(Subscriber *s, char *endpoint, size_t endpoint_size, uint64_t *last_seq) {
    Rampart__Bus__V1__JournalInfoRequest request = RAMPART__BUS__V1__JOURNAL_INFO_REQUEST__INIT;
    ProtobufCMessage *answer = NULL;
    char message[512];
    int status = bus_call(&s->bus, JOURNAL_SERVICE, INFO_METHOD, &request.base,
                          &rampart__bus__v1__journal_info_response__descriptor, 1, s->timeout_ms, &answer, message,
                          sizeof message);
    if (status != BUS_OK) {
        if (status != BUS_CANCELLED) fprintf(stderr, "Journal/Info failed: %s: %s\n", bus_status_name(status), message);
        return status;
    }
    Rampart__Bus__V1__JournalInfoResponse *info = (Rampart__Bus__V1__JournalInfoResponse *)answer;
    snprintf(endpoint, endpoint_size, "%s", info->publish_endpoint);
    *last_seq = info->last_seq;
    protobuf_c_message_free_unpacked(answer, NULL);
    if (endpoint[0] == '\0') {
        fprintf(stderr, "Journal/Info gave no publish endpoint\n");
        return BUS_UNKNOWN;
    }
    return BUS_OK;
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: c-subscriber [--bus ENDPOINT] [--prefix PREFIX] [--state FILE] [--since SEQ] [--out FILE]\n"
            "                    [--timeout-ms MS] [--count N] [--events ENDPOINT]\n"
            "Prints every event whose topic starts with PREFIX once, in order: SEQ  TOPIC  SUBJECT  key=value...\n"
            "  --bus ENDPOINT   the broker (default $RAMPART_BUS, else tcp://127.0.0.1:7400)\n"
            "  --prefix PREFIX  topic prefix, e.g. backup. (default: every topic)\n"
            "  --state FILE     where the position is kept; a restart resumes from it\n"
            "  --since SEQ      start after SEQ when there is no state yet (default: the journal's end,\n"
            "                   i.e. only new events; 0 = from the beginning)\n"
            "  --out FILE       append the lines to FILE instead of standard output\n"
            "  --timeout-ms MS  deadline of each bus call (default 5000)\n"
            "  --events ENDPOINT  the PUB endpoint (default: asked of the journal, as it should be)\n"
            "  --count N        exit after printing N events\n"
            "Exit codes: 0 stopped (SIGTERM, SIGINT, --count), 1 local failure (files), 5 bus unreachable,\n"
            "64 bad usage.\n");
}

static int parse_number(const char *text, long long minimum, long long *value) {
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed < minimum) return -1;
    *value = parsed;
    return 0;
}

int main(int argc, char **argv) {
    const char *bus_endpoint = getenv("RAMPART_BUS");
    if (bus_endpoint == NULL || bus_endpoint[0] == '\0') bus_endpoint = "tcp://127.0.0.1:7400";
    const char *out_path = NULL, *events_endpoint = NULL;
    long long since = -1, timeout = 5000, count = 0, kill_after = 0;
    Subscriber s;
    memset(&s, 0, sizeof s);
    s.prefix = "";
    static const struct option options[] = {
        {"bus", required_argument, NULL, 'b'},     {"prefix", required_argument, NULL, 'p'},
        {"state", required_argument, NULL, 's'},   {"since", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'},     {"timeout-ms", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'c'},   {"events", required_argument, NULL, 'e'},
        {"test-kill-after", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int index = 0;
    for (int option; (option = getopt_long(argc, argv, "h", options, &index)) != -1; index = 0) {
        int bad = 0;
        switch (option) {
        case 'b': bus_endpoint = optarg; break;
        case 'p': s.prefix = optarg; break;
        case 's': s.state_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'e': events_endpoint = optarg; break;
        case 'S': bad = parse_number(optarg, 0, &since); break;
        case 't': bad = parse_number(optarg, 1, &timeout) || timeout > 3600000; break;
        case 'c': bad = parse_number(optarg, 1, &count); break;
        case 'K': bad = parse_number(optarg, 1, &kill_after); break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "c-subscriber: invalid value '%s' for --%s\n", optarg, options[index].name);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    s.prefix_length = strlen(s.prefix);
    s.timeout_ms = (int)timeout;
    s.count = (long)count;
    s.kill_after = (long)kill_after;

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal; /* no SA_RESTART: a blocking poll returns EINTR and we stop */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigset_t stop_signals; /* a parent may have left them blocked (the mask is inherited across exec) */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is a write error, reported */

    int exit_code = EXIT_OK, lock = -1;
    char error[512];
    void *context = zmq_ctx_new();
    if (context == NULL) {
        fprintf(stderr, "fatal: cannot create a ZeroMQ context: %s\n", zmq_strerror(errno));
        return EXIT_FAILURE_LOCAL;
    }
    s.output.fd = -1;
    /* The bus key ($RAMPART_KEY, made by `rampart keys init`); without one the bus must run plain. */
    BusKey key;
    memset(&key, 0, sizeof key);
    const char *key_path = getenv("RAMPART_KEY");
    if (key_path != NULL && key_path[0] != '\0') {
        char key_error[512];
        if (bus_key_load(key_path, &key, key_error, sizeof key_error) != 0) {
            fprintf(stderr, "fatal: %s\n", key_error);
            exit_code = EXIT_UNAVAILABLE;
            goto done;
        }
    }
    if (bus_client_open(&s.bus, context, bus_endpoint, "c-subscriber", &key) != 0) {
        fprintf(stderr, "fatal: cannot connect to %s: %s\n", bus_endpoint, zmq_strerror(errno));
        exit_code = EXIT_USAGE;
        goto done;
    }
    if (output_open(&s.output, out_path, error, sizeof error) != 0) {
        fprintf(stderr, "fatal: %s\n", error);
        exit_code = EXIT_FAILURE_LOCAL;
        goto done;
    }

    /* Where to start: the saved position (repairing the output if the last run died between printing
     * and saving), else --since, else the journal's end. */
    SavedPosition saved;
    int have_saved = 0;
    if (s.state_path != NULL) {
        if ((lock = position_lock(s.state_path, error, sizeof error)) < 0 ||
            (have_saved = position_load(s.state_path, &saved, error, sizeof error)) < 0) {
            fprintf(stderr, "fatal: %s\n", error);
            exit_code = EXIT_FAILURE_LOCAL;
            goto done;
        }
        if (have_saved) output_repair(&s.output, &saved);
    }
    uint64_t journal_end = 0;
    int status = journal_info(&s, s.endpoint, sizeof s.endpoint, &journal_end);
    if (status != BUS_OK) {
        if (status != BUS_CANCELLED) fprintf(stderr, "fatal: the bus at %s is unreachable\n", bus_endpoint);
        exit_code = status == BUS_CANCELLED ? EXIT_OK : EXIT_UNAVAILABLE;
        goto done;
    }
    if (events_endpoint != NULL) snprintf(s.endpoint, sizeof s.endpoint, "%s", events_endpoint);
    s.pinned_endpoint = events_endpoint != NULL;
    s.position = have_saved ? saved.position : since >= 0 ? (uint64_t)since : journal_end;
    s.dirty = !have_saved;
    fprintf(stderr, "%s events%s%s after seq %" PRIu64 " (%s; the journal is at %" PRIu64 "), live from %s\n",
            have_saved ? "resuming" : "starting", s.prefix_length ? " on " : "", s.prefix, s.position,
            have_saved ? "saved position" : since >= 0 ? "--since" : "journal end", journal_end, s.endpoint);

    s.sub = zmq_socket(context, ZMQ_SUB);
    int linger = 0, high_water = 100000;
    int64_t max_size = BUS_MAX_FRAME;
    if (s.sub == NULL || zmq_setsockopt(s.sub, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s.sub, ZMQ_RCVHWM, &high_water, sizeof high_water) != 0 ||
        zmq_setsockopt(s.sub, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size) != 0 ||
        zmq_setsockopt(s.sub, ZMQ_SUBSCRIBE, "", 0) != 0 || bus_key_apply(s.sub, &key) != 0 ||
        zmq_connect(s.sub, s.endpoint) != 0) {
        fprintf(stderr, "fatal: cannot subscribe to %s: %s\n", s.endpoint, zmq_strerror(errno));
        exit_code = EXIT_UNAVAILABLE;
        goto done;
    }

    int catch_up_due = 1, silent = 0;
    int64_t retry_at = 0, last_heard = monotonic_ms(), last_info = last_heard;
    while (!stop_requested && !s.done) {
        int64_t now = monotonic_ms();
        if (catch_up_due && now >= retry_at) {
            status = catch_up(&s);
            if (status < 0) {
                exit_code = EXIT_FAILURE_LOCAL;
                break;
            }
            if (status == BUS_OK) {
                catch_up_due = 0;
            } else {
                retry_at = monotonic_ms() + 1000; /* the bus is away or busy: try again in a second */
            }
            if (save(&s) != 0) {
                exit_code = EXIT_FAILURE_LOCAL;
                break;
            }
            continue;
        }
        zmq_pollitem_t item = {s.sub, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, catch_up_due ? 100 : 500);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "fatal: poll: %s\n", zmq_strerror(errno));
            exit_code = EXIT_FAILURE_LOCAL;
            break;
        }
        int fatal = 0;
        for (int taken = 0; ready > 0 && taken < 10000 && !fatal && !s.done && !stop_requested; taken++) {
            BusMessage message;
            if (bus_receive(s.sub, &message, ZMQ_DONTWAIT) != 0) break;
            last_heard = monotonic_ms();
            if (silent) {
                fprintf(stderr, "the publisher is back\n");
                silent = 0;
            }
            int gap = 0;
            fatal = on_live(&s, &message, &gap, catch_up_due) != 0;
            bus_message_close(&message);
            if (gap && !catch_up_due) {
                catch_up_due = 1;
                break; /* fill it now, before reading on */
            }
        }
        if (fatal) {
            exit_code = EXIT_FAILURE_LOCAL;
            break;
        }
        now = monotonic_ms();
        if (now - last_heard >= SILENCE_MS && now - last_info >= SILENCE_MS) {
            /* No heartbeat: the bus may have restarted, perhaps elsewhere. Ask the journal again. */
            if (!silent) fprintf(stderr, "no heartbeat from %s for %d ms; asking the journal\n", s.endpoint, SILENCE_MS);
            silent = 1;
            last_info = now;
            char endpoint[sizeof s.endpoint];
            status = journal_info(&s, endpoint, sizeof endpoint, &journal_end);
            if (status == BUS_OK) {
                if (!s.pinned_endpoint && strcmp(endpoint, s.endpoint) != 0) {
                    fprintf(stderr, "the publisher moved to %s\n", endpoint);
                    zmq_disconnect(s.sub, s.endpoint);
                    if (zmq_connect(s.sub, endpoint) != 0) {
                        fprintf(stderr, "cannot subscribe to %s: %s\n", endpoint, zmq_strerror(errno));
                    } else {
                        snprintf(s.endpoint, sizeof s.endpoint, "%s", endpoint);
                    }
                }
                if (journal_end > s.position) catch_up_due = 1;
            }
        }
        if (s.dirty && monotonic_ms() - s.saved_at >= SAVE_INTERVAL_MS && save(&s) != 0) {
            exit_code = EXIT_FAILURE_LOCAL;
            break;
        }
    }
    if (exit_code == EXIT_OK && save(&s) != 0) exit_code = EXIT_FAILURE_LOCAL;
    if (exit_code == EXIT_OK)
        fprintf(stderr, "stopped after seq %" PRIu64 " (%ld line(s) printed by this run)\n", s.position, s.printed);

done:
    if (s.sub != NULL) zmq_close(s.sub);
    bus_client_close(&s.bus);
    if (s.output.fd >= 0) output_close(&s.output);
    if (lock >= 0) close(lock);
    zmq_ctx_term(context);
    return exit_code;
}

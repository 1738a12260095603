/* See bus_client.h. Frames of a call (docs/protocol.md §3.1, protocol 2):
 *   sent:     "RB2C" RequestHeader (with service)   payload
 *   received: "RB2C" ReplyHeader                    payload (empty unless status is OK)
 * The first frame is the 4-byte tag immediately followed by the serialized header. */
#define _GNU_SOURCE
#include "bus_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rampart/bus/v1/bus.pb-c.h"

static const char TAG[4] = {'R', 'B', '2', 'C'};

int64_t bus_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

const char *bus_status_name(int status) {
    static const char *const names[] = {
        "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED",   "OUT_OF_RANGE",       "UNIMPLEMENTED",     "INTERNAL",         "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED",
    };
    if (status < 0 || (size_t)status >= sizeof names / sizeof names[0]) return "UNKNOWN";
    return names[status];
}

int bus_receive(void *socket, BusMessage *message, int flags) {
    message->kept = 0;
    message->total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        /* Only the first frame may be absent: the parts of a message arrive together. */
        int rc;
        do {
            rc = zmq_msg_recv(&frame, socket, message->total == 0 ? flags : 0);
        } while (rc == -1 && errno == EINTR && message->total > 0);
        if (rc == -1) {
            int saved = errno;
            zmq_msg_close(&frame);
            bus_message_close(message);
            errno = saved;
            return -1;
        }
        more = zmq_msg_more(&frame);
        if (message->kept < BUS_MESSAGE_KEEP) {
            message->frames[message->kept++] = frame; /* ownership moves into the array */
        } else {
            zmq_msg_close(&frame);
        }
        message->total++;
    }
    return 0;
}

void bus_message_close(BusMessage *message) {
    for (int i = 0; i < message->kept; i++) zmq_msg_close(&message->frames[i]);
    message->kept = 0;
}

const uint8_t *bus_frame_data(BusMessage *message, int index) {
    return (const uint8_t *)zmq_msg_data(&message->frames[index]);
}

size_t bus_frame_size(BusMessage *message, int index) { return zmq_msg_size(&message->frames[index]); }

int bus_key_load(const char *path, BusKey *key, char *error, size_t error_size) {
    memset(key, 0, sizeof *key);
    struct stat info;
    if (stat(path, &info) != 0) {
        snprintf(error, error_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (info.st_mode & 077) {
        snprintf(error, error_size, "%s: a key file must be readable by its owner only; run: chmod 600 %s", path, path);
        return -1;
    }
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(error, error_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, file) != NULL) {
        char name[32], value[128];
        if (line[0] == '#' || sscanf(line, " %31[a-z-] = %127s", name, value) != 2 || strlen(value) != 40) continue;
        if (strcmp(name, "public-key") == 0) memcpy(key->public_key, value, 41);
        if (strcmp(name, "secret-key") == 0) memcpy(key->secret_key, value, 41);
        if (strcmp(name, "broker-key") == 0) memcpy(key->broker_key, value, 41);
    }
    fclose(file);
    if (!key->public_key[0] || !key->secret_key[0] || !key->broker_key[0]) {
        snprintf(error, error_size, "%s: needs public-key, secret-key and broker-key of 40 characters", path);
        return -1;
    }
    key->present = 1;
    return 0;
}

int bus_key_apply(void *socket, const BusKey *key) {
    if (key == NULL || !key->present) return 0;
    /* Z85 text of 40 characters: libzmq takes it with its terminating NUL (41 bytes). */
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, key->broker_key, 41) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, key->public_key, 41) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, key->secret_key, 41) != 0)
        return -1;
    return 0;
}

int bus_client_open(BusClient *client, void *context, const char *endpoint, const char *program, const BusKey *key) {
    memset(client, 0, sizeof *client);
    client->next_id = 1;
    char host[64] = "localhost";
    if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(client->caller, sizeof client->caller, "%s@%s", program, host);
    client->socket = zmq_socket(context, ZMQ_DEALER);
    if (client->socket == NULL) return -1;
    int linger = 0;
    int64_t max_size = BUS_MAX_FRAME;
    if (zmq_setsockopt(client->socket, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(client->socket, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size) != 0 ||
        bus_key_apply(client->socket, key) != 0 || zmq_connect(client->socket, endpoint) != 0) {
        int saved = errno;
        zmq_close(client->socket);
        client->socket = NULL;
        errno = saved;
        return -1;
    }
    return 0;
}

void bus_client_close(BusClient *client) {
    if (client->socket != NULL) zmq_close(client->socket);
    client->socket = NULL;
}

/* A random (version 4) UUID for the "trace-id" metadata. */
static void trace_id(char out[37]) {
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t fallback = (uint64_t)bus_now_ms() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)(fallback >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* `prefix` (prefix_size bytes) followed by `message` serialized, in a new buffer of *size bytes. */
static uint8_t *pack(const void *prefix, size_t prefix_size, const ProtobufCMessage *message, size_t *size) {
    size_t packed = protobuf_c_message_get_packed_size(message);
    *size = prefix_size + packed;
    uint8_t *buffer = malloc(*size ? *size : 1);
    if (buffer == NULL) return NULL;
    memcpy(buffer, prefix, prefix_size);
    protobuf_c_message_pack(message, buffer + prefix_size);
    return buffer;
}

/* Sends one request; returns 0, or -1 with `message` filled. */
static int send_request(BusClient *client, const char *service, const char *method, uint64_t id, int64_t deadline,
                        const uint8_t *payload, size_t payload_size, char *message, size_t message_size) {
    char trace[37];
    trace_id(trace);
    Rampart__Bus__V1__RequestHeader__MetadataEntry caller = RAMPART__BUS__V1__REQUEST_HEADER__METADATA_ENTRY__INIT;
    caller.key = "caller";
    caller.value = client->caller;
    Rampart__Bus__V1__RequestHeader__MetadataEntry trace_entry = RAMPART__BUS__V1__REQUEST_HEADER__METADATA_ENTRY__INIT;
    trace_entry.key = "trace-id";
    trace_entry.value = trace;
    Rampart__Bus__V1__RequestHeader__MetadataEntry *metadata[] = {&caller, &trace_entry};
    Rampart__Bus__V1__RequestHeader header = RAMPART__BUS__V1__REQUEST_HEADER__INIT;
    header.request_id = id;
    header.method = (char *)method;
    header.deadline_unix_ms = deadline;
    header.n_metadata = 2;
    header.metadata = metadata;
    header.service = (char *)service;
    size_t head_size;
    uint8_t *head = pack(TAG, sizeof TAG, &header.base, &head_size);
    if (head == NULL) {
        snprintf(message, message_size, "out of memory");
        return -1;
    }
    /* Never block: a DEALER queues while the broker is away; a full queue means it is not coming back soon. */
    int rc = zmq_send(client->socket, head, head_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)head_size ? 0 : -1;
    if (rc == 0) {
        /* The first part went: the rest of the message is accepted too. */
        rc = zmq_send(client->socket, payload, payload_size, 0) == (int)payload_size ? 0 : -1;
    }
    free(head);
    if (rc != 0) {
        snprintf(message, message_size, "cannot send to the bus: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Waits for the reply to request `id` until `deadline`; replies to other ids are dropped. */
static int wait_reply(BusClient *client, const char *service, uint64_t id, int64_t deadline,
                      const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response, char *message,
                      size_t message_size) {
    for (;;) {
        int64_t left = deadline - bus_now_ms();
        if (left <= 0) {
            snprintf(message, message_size, "no answer from '%s' before the deadline (is the bus running?)", service);
            return BUS_DEADLINE_EXCEEDED;
        }
        zmq_pollitem_t item = {client->socket, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, (long)left);
        if (ready == -1) {
            if (errno == EINTR) {
                snprintf(message, message_size, "interrupted");
                return BUS_CANCELLED;
            }
            snprintf(message, message_size, "poll failed: %s", zmq_strerror(errno));
            return BUS_UNAVAILABLE;
        }
        if (ready == 0) continue;
        BusMessage reply;
        if (bus_receive(client->socket, &reply, ZMQ_DONTWAIT) != 0) continue;
        if (reply.total != 2 || bus_frame_size(&reply, 0) < sizeof TAG ||
            memcmp(bus_frame_data(&reply, 0), TAG, sizeof TAG) != 0) {
            fprintf(stderr, "bad reply frame dropped: %d frames, not RB2C+header payload\n", reply.total);
            bus_message_close(&reply);
            continue;
        }
        Rampart__Bus__V1__ReplyHeader *header =
            rampart__bus__v1__reply_header__unpack(NULL, bus_frame_size(&reply, 0) - sizeof TAG,
                                                   bus_frame_data(&reply, 0) + sizeof TAG);
        if (header == NULL) {
            fprintf(stderr, "bad reply frame dropped: undecodable ReplyHeader\n");
            bus_message_close(&reply);
            continue;
        }
        if (header->request_id != id) {
            /* A late answer to an earlier (timed out) request, or request id 0: the broker could not parse one. */
            if (header->request_id == 0)
                fprintf(stderr, "the bus rejected a request it could not parse: %s\n", header->message);
            rampart__bus__v1__reply_header__free_unpacked(header, NULL);
            bus_message_close(&reply);
            continue;
        }
        int status = (int)header->status;
        if (status == BUS_OK) {
            *response = protobuf_c_message_unpack(response_type, NULL, bus_frame_size(&reply, 1), bus_frame_data(&reply, 1));
            if (*response == NULL) {
                status = BUS_INTERNAL;
                snprintf(message, message_size, "undecodable %s from '%s'", response_type->name, header->answered_by);
            }
        } else {
            snprintf(message, message_size, "%s (answered by %s)", header->message, header->answered_by);
        }
        rampart__bus__v1__reply_header__free_unpacked(header, NULL);
        bus_message_close(&reply);
        return status;
    }
}

int bus_call(BusClient *client, const char *service, const char *method, const ProtobufCMessage *request,
             const ProtobufCMessageDescriptor *response_type, int idempotent, int timeout_ms,
             ProtobufCMessage **response, char *message, size_t message_size) {
    *response = NULL;
    message[0] = '\0';
    int64_t deadline = bus_now_ms() + timeout_ms;
    size_t payload_size;
    uint8_t *payload = pack("", 0, request, &payload_size);
    if (payload == NULL) {
        snprintf(message, message_size, "out of memory");
        return BUS_INTERNAL;
    }
    long backoff_ms = 50;
    int status;
    for (;;) {
        uint64_t id = client->next_id++;
        if (send_request(client, service, method, id, deadline, payload, payload_size, message, message_size) != 0) {
            status = BUS_UNAVAILABLE;
        } else {
            status = wait_reply(client, service, id, deadline, response_type, response, message, message_size);
        }
        /* Retry only UNAVAILABLE, only idempotent calls, with a new request id, within the same deadline. */
        if (status != BUS_UNAVAILABLE || !idempotent || bus_now_ms() + backoff_ms >= deadline) break;
        struct timespec pause = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        if (nanosleep(&pause, NULL) != 0 && errno == EINTR) {
            snprintf(message, message_size, "interrupted");
            status = BUS_CANCELLED;
            break;
        }
        backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
    }
    free(payload);
    return status;
}

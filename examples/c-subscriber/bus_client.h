/* A minimal Rampart bus client over one ZeroMQ DEALER socket (docs/protocol.md §3.1, §4, §7):
 * one call at a time, absolute deadlines, request ids from 1, retries of idempotent calls on
 * UNAVAILABLE with backoff. Also the multipart receive both sockets of the example use. */
#ifndef RAMPART_EXAMPLE_BUS_CLIENT_H
#define RAMPART_EXAMPLE_BUS_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* StatusCode values the example uses (gRPC numbers, bus.proto). */
enum {
    BUS_OK = 0,
    BUS_CANCELLED = 1,
    BUS_UNKNOWN = 2,
    BUS_INVALID_ARGUMENT = 3,
    BUS_DEADLINE_EXCEEDED = 4,
    BUS_INTERNAL = 13,
    BUS_UNAVAILABLE = 14,
};

/* Largest frame accepted, as the bus (protocol §9). */
#define BUS_MAX_FRAME (16 << 20)

/* One received multipart message: the first BUS_MESSAGE_KEEP frames are kept, the rest only counted. */
#define BUS_MESSAGE_KEEP 6
typedef struct {
    zmq_msg_t frames[BUS_MESSAGE_KEEP];
    int kept;  /* frames initialised in `frames` */
    int total; /* frames the message had */
} BusMessage;

/* Receives one whole message from `socket` (`flags`: 0 or ZMQ_DONTWAIT). Returns 0, or -1 with errno
 * (EAGAIN: nothing there; EINTR: a signal). Close it with bus_message_close. */
int bus_receive(void *socket, BusMessage *message, int flags);
void bus_message_close(BusMessage *message);
/* Frame `index` of a message and its size (index < kept). */
const uint8_t *bus_frame_data(BusMessage *message, int index);
size_t bus_frame_size(BusMessage *message, int index);

/* A Rampart bus key file (`rampart keys init`, docs/security.md): the bus talks only CURVE, unless it
 * runs --insecure-plain on loopback. */
typedef struct {
    int present; /* 0: no key (plain bus) */
    char public_key[41], secret_key[41], broker_key[41];
} BusKey;

/* Loads the key file at `path` ("name = value" lines). Refuses a file others may read. Returns 0, or -1
 * with `error` filled for a person. */
int bus_key_load(const char *path, BusKey *key, char *error, size_t error_size);

/* Makes `socket` a CURVE client with `key`, before it connects (nothing when key->present is 0). */
int bus_key_apply(void *socket, const BusKey *key);

typedef struct {
    void *socket;     /* DEALER connected to the broker */
    uint64_t next_id; /* request ids: 1, 2, 3, ... never reused on this socket */
    char caller[160]; /* metadata "caller" */
} BusClient;

/* Opens a DEALER on `context` and connects it to `endpoint`. Returns 0, or -1 with errno set. */
int bus_client_open(BusClient *client, void *context, const char *endpoint, const char *program, const BusKey *key);

/* Closes the socket (linger 0: nothing waits). */
void bus_client_close(BusClient *client);

/* Calls `method` on `service` with `request`, waiting at most `timeout_ms` in all (retries included).
 * Returns the status: BUS_OK with *response set (free it with protobuf_c_message_free_unpacked), or
 * another code with `message` filled for a person. BUS_CANCELLED when a signal interrupted the wait. */
int bus_call(BusClient *client, const char *service, const char *method, const ProtobufCMessage *request,
             const ProtobufCMessageDescriptor *response_type, int idempotent, int timeout_ms,
             ProtobufCMessage **response, char *message, size_t message_size);

/* The name of a status code ("UNAVAILABLE"); unknown numbers read as "UNKNOWN" (protocol §7). */
const char *bus_status_name(int status);

/* Milliseconds since the Unix epoch (wall clock: deadlines are compared with the broker's clock). */
int64_t bus_now_ms(void);

#endif

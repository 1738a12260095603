"""A small client of the Rampart bus (docs/protocol.md), with pyzmq and the generated protobuf code.

- `BusClient.call`: one request over a DEALER socket (§3.1, §4): request ids from 1, an absolute
  deadline, `caller` and `trace-id` metadata, and retries of idempotent calls on UNAVAILABLE (§7).
- `EventFollower`: every event whose topic starts with a prefix, once and in order (§11.5): a SUB
  socket subscribed to everything, `Journal/Replay` for gaps, heartbeats and a silent publisher.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time
import uuid
from typing import TypeVar

import zmq
from google.protobuf.message import DecodeError, Message

from rampart.bus.v1 import bus_pb2

CLIENT_TAG = b"RB2C"  # protocol 2: the first frame is this tag followed by the header (§3)
JOURNAL_SERVICE = "bus.journal"
INFO_METHOD = "rampart.bus.v1.Journal/Info"
REPLAY_METHOD = "rampart.bus.v1.Journal/Replay"
HEARTBEAT_TOPIC = b"$heartbeat"
MAX_FRAME = 16 << 20  # the bus's frame limit (§9)
REPLAY_LIMIT = 1000  # <= 10000, so "fewer than REPLAY_LIMIT events" means "complete"
SILENCE = 3.0  # seconds without a publisher heartbeat (one a second) before asking the journal

M = TypeVar("M", bound=Message)


def status_name(status: int) -> str:
    """The name of a status code; unknown numbers read as UNKNOWN (§7)."""
    try:
        return bus_pb2.StatusCode.Name(status)
    except ValueError:
        return "UNKNOWN"


class RPCError(Exception):
    """A call that did not end with OK: the status, a message for people, and who answered."""

    def __init__(self, status: int, message: str, answered_by: str) -> None:
        super().__init__(f"{status_name(status)}: {message} (answered by {answered_by})")
        self.status = status
        self.message = message
        self.answered_by = answered_by


def load_key(path: str) -> dict[str, str]:
    """Reads a Rampart bus key file (`rampart keys init`): `name = value` lines. Refuses one others may read."""
    if os.stat(path).st_mode & 0o077:
        raise PermissionError(f"{path}: a key file must be readable by its owner only; run: chmod 600 {path}")
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                name, value = line.split("=", 1)
                values[name.strip()] = value.strip()
    for needed in ("public-key", "secret-key", "broker-key"):
        if len(values.get(needed, "")) != 40:
            raise ValueError(f"{path}: no valid '{needed}'")
    return values


def apply_key(sock: zmq.Socket[bytes], key: dict[str, str] | None) -> None:
    """Makes `sock` a CURVE client with `key` (before connect): the bus talks only CURVE (docs/security.md)."""
    if key is None:
        return
    sock.curve_publickey = key["public-key"].encode()
    sock.curve_secretkey = key["secret-key"].encode()
    sock.curve_serverkey = key["broker-key"].encode()


class BusClient:
    """Calls services over one DEALER socket, one call at a time. Use it as a context manager.

    `key_file`: this client's bus key (default: $RAMPART_KEY); without one the bus must run --insecure-plain."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, context: zmq.Context[zmq.Socket[bytes]] | None = None,
                 program: str = "python-example", key_file: str | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.context = context or zmq.Context.instance()
        self.caller = f"{program}@{socket.gethostname()}"
        self._ids = itertools.count(1)  # unique per socket, never 0, never reused
        self._socket = self.context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        key_file = key_file or os.environ.get("RAMPART_KEY") or None
        self.key = load_key(key_file) if key_file else None
        apply_key(self._socket, self.key)
        self._socket.connect(endpoint)

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close(linger=0)

    def call(self, service: str, method: str, request: Message, response_type: type[M], *,
             idempotent: bool = False, timeout: float | None = None) -> M:
        """Sends `request` to `method` of `service` and returns the decoded response, or raises RPCError.

        Waits `timeout` seconds at most (retries included): DEADLINE_EXCEEDED when nothing came back.
        """
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        deadline_ms = int(deadline * 1000)
        payload = request.SerializeToString()
        backoff = 0.05
        while True:
            request_id = next(self._ids)
            header = bus_pb2.RequestHeader(request_id=request_id, method=method, deadline_unix_ms=deadline_ms,
                                           service=service)
            header.metadata["caller"] = self.caller
            header.metadata["trace-id"] = str(uuid.uuid4())
            try:
                self._socket.send_multipart(
                    [CLIENT_TAG + header.SerializeToString(), payload], flags=zmq.NOBLOCK)
            except zmq.Again:
                raise RPCError(bus_pb2.UNAVAILABLE, "the bus does not take requests (queue full)", "client") from None
            header_reply, body = self._wait_reply(request_id, deadline, service)
            if header_reply.status == bus_pb2.OK:
                response = response_type()
                try:
                    response.ParseFromString(body)
                except DecodeError as error:
                    raise RPCError(bus_pb2.INTERNAL, f"undecodable {response_type.DESCRIPTOR.full_name}: {error}",
                                   header_reply.answered_by) from error
                return response
            retry = header_reply.status == bus_pb2.UNAVAILABLE and idempotent and time.time() + backoff < deadline
            if not retry:
                raise RPCError(header_reply.status, header_reply.message, header_reply.answered_by)
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _wait_reply(self, request_id: int, deadline: float, service: str) -> tuple[bus_pb2.ReplyHeader, bytes]:
        while (left := deadline - time.time()) > 0:
            if not self._socket.poll(max(1, int(left * 1000)), zmq.POLLIN):
                continue
            frames = self._socket.recv_multipart()
            if len(frames) != 2 or not frames[0].startswith(CLIENT_TAG):
                print(f"bad reply frame dropped: {len(frames)} frames", file=sys.stderr)
                continue
            header = bus_pb2.ReplyHeader()
            try:
                header.ParseFromString(frames[0][len(CLIENT_TAG):])
            except DecodeError:
                print("bad reply frame dropped: undecodable ReplyHeader", file=sys.stderr)
                continue
            if header.request_id == request_id:
                return header, frames[1]
            # A late reply to an earlier request, or request id 0 (the broker could not parse one of ours).
        raise RPCError(bus_pb2.DEADLINE_EXCEEDED,
                       f"no answer from {service!r} before the deadline (is the bus at {self.endpoint} running?)",
                       "client")


class EventFollower:
    """Delivers each event whose topic starts with `prefix` exactly once, in seq order (§11.5).

    `position` is the highest seq handled (delivered, or skipped as not matching). Start it with
    `since` (a saved position) or, by default, at the journal's end: only events from now on.
    """

    def __init__(self, client: BusClient, prefix: str = "", *, since: int | None = None) -> None:
        self.client = client
        self.prefix = prefix
        info = client.call(JOURNAL_SERVICE, INFO_METHOD, bus_pb2.JournalInfoRequest(), bus_pb2.JournalInfoResponse,
                           idempotent=True)
        self.endpoint = info.publish_endpoint
        self.position: int = info.last_seq if since is None else since
        self._catch_up_due = since is not None and info.last_seq > since
        self._sub = client.context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        apply_key(self._sub, client.key)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        self._sub.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")  # everything, heartbeats too: a seq jump is then a real gap
        self._sub.connect(self.endpoint)
        self._last_heard = time.monotonic()
        self._last_info = self._last_heard

    def close(self) -> None:
        self._sub.close(linger=0)

    def poll(self, timeout: float) -> list[bus_pb2.Event]:
        """Waits up to `timeout` seconds for news; returns the matching events handled, in order.

        Raises RPCError when the journal cannot be asked (the position keeps what was handled).
        """
        handled: list[bus_pb2.Event] = []
        deadline = time.monotonic() + timeout
        while not handled:
            if self._catch_up_due:
                self._catch_up(handled)
                continue
            left = deadline - time.monotonic()
            if left <= 0 or not self._sub.poll(max(1, int(left * 1000)), zmq.POLLIN):
                break
            while not self._catch_up_due:
                try:
                    frames = self._sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._last_heard = time.monotonic()
                self._live(frames, handled)
        now = time.monotonic()
        if now - self._last_heard >= SILENCE and now - self._last_info >= SILENCE:
            # No heartbeat: the bus may have restarted. Ask the journal where it is.
            self._last_info = now
            info = self.client.call(JOURNAL_SERVICE, INFO_METHOD, bus_pb2.JournalInfoRequest(),
                                    bus_pb2.JournalInfoResponse, idempotent=True)
            if info.publish_endpoint != self.endpoint:
                self._sub.disconnect(self.endpoint)
                self.endpoint = info.publish_endpoint
                self._sub.connect(self.endpoint)
            if info.last_seq > self.position:
                self._catch_up(handled)
        return handled

    def _handle(self, event: bus_pb2.Event, handled: list[bus_pb2.Event]) -> None:
        self.position = event.seq
        if event.topic.startswith(self.prefix):
            handled.append(event)

    def _live(self, frames: list[bytes], handled: list[bus_pb2.Event]) -> None:
        if len(frames) != 2:
            print(f"bad frame skipped: a message of {len(frames)} frames", file=sys.stderr)
            return
        topic, body = frames
        if topic == HEARTBEAT_TOPIC:
            beat = bus_pb2.PublisherHeartbeat()
            try:
                beat.ParseFromString(body)
            except DecodeError:
                print("bad frame skipped: undecodable PublisherHeartbeat", file=sys.stderr)
                return
            if beat.last_seq > self.position:
                self._catch_up_due = True  # missed the tail: slow joiner, dropped messages, a restart
            return
        event = bus_pb2.Event()
        try:
            event.ParseFromString(body)
        except DecodeError:
            print(f"bad frame skipped: undecodable Event on topic {topic[:200]!r}", file=sys.stderr)
            return  # a real event lost this way is a gap, filled from the journal
        if event.seq <= self.position:
            return  # seen already (a live copy of something replayed)
        if event.seq == self.position + 1:
            self._handle(event, handled)
        else:
            self._catch_up_due = True  # gap: the replay includes this event

    def _catch_up(self, handled: list[bus_pb2.Event]) -> None:
        """Handles every matching event after the position from the journal (§11.4)."""
        while True:
            request = bus_pb2.ReplayRequest(since_seq=self.position, topic_prefix=self.prefix, limit=REPLAY_LIMIT)
            answer = self.client.call(JOURNAL_SERVICE, REPLAY_METHOD, request, bus_pb2.ReplayResponse,
                                      idempotent=True)
            for event in answer.events:
                if event.seq > self.position:
                    self._handle(event, handled)
            if len(answer.events) < REPLAY_LIMIT:
                self.position = max(self.position, answer.last_seq)
                self._catch_up_due = False
                return

"""Back up an HA pair over the Rampart bus and follow the job from the event stream.

Lists the devices, starts a backup of the pair (service "backup", rampart.backup.v1.Backup/StartBackup,
target kind HA_PAIR), follows it from the `backup.` events (polling GetJob only when the events stay
silent), then prints the files it stored.

    VENV/bin/python examples/python/backup_pair.py [--bus tcp://127.0.0.1:7400] [--output text|json] PAIR

Exit codes (as the `rampart` CLI): 0 the backup succeeded; 7 partially succeeded; 8 failed; 9 cancelled
(each with the job's messages on stderr); 3 no such pair; 5 the bus or a service is unreachable or too
slow (every call has a deadline, and the whole wait too); 6 invalid argument; 4 refused; 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import NoReturn

from rampart.backup.v1 import backup_pb2
from rampart.bus.v1 import bus_pb2
from rampart.inventory.v1 import inventory_pb2
from rampart_bus import BusClient, EventFollower, RPCError, status_name

BACKUP_SERVICE = "backup"
BACKUP = "rampart.backup.v1.Backup/"
INVENTORY_SERVICE = "inventory"
LIST_DEVICES = "rampart.inventory.v1.Inventory/ListDevices"
FINISHED = {
    backup_pb2.SUCCEEDED: 0,
    backup_pb2.PARTIALLY_SUCCEEDED: 7,
    backup_pb2.FAILED: 8,
    backup_pb2.CANCELLED: 9,
}
# The events that end a job (docs/backups.md, "Events").
JOB_ENDED = {"backup.job.succeeded", "backup.job.partially_succeeded", "backup.job.failed", "backup.job.cancelled"}
# With no event about the job for this long, ask for it (an event lost for good, a silent stream).
POLL_AFTER_SILENCE = 5.0


def exit_code(status: int) -> int:
    """The CLI's exit code for a call that failed with `status`."""
    if status == bus_pb2.NOT_FOUND:
        return 3
    if status in (bus_pb2.ALREADY_EXISTS, bus_pb2.FAILED_PRECONDITION, bus_pb2.ABORTED, bus_pb2.PERMISSION_DENIED,
                  bus_pb2.UNAUTHENTICATED):
        return 4
    if status in (bus_pb2.UNAVAILABLE, bus_pb2.DEADLINE_EXCEEDED, bus_pb2.RESOURCE_EXHAUSTED):
        return 5
    if status in (bus_pb2.INVALID_ARGUMENT, bus_pb2.OUT_OF_RANGE, bus_pb2.UNIMPLEMENTED):
        return 6
    return 1


def fail(code: int, message: str) -> NoReturn:
    print(f"backup_pair: {message}", file=sys.stderr)
    sys.exit(code)


def about_job(event: bus_pb2.Event, job_id: str) -> bool:
    """Whether a `backup.` event concerns the job: its own events, its tasks' and its stored files'."""
    return event.subject == job_id or event.attributes.get("job_id") == job_id


def describe(event: bus_pb2.Event) -> str:
    facts = "  ".join(f"{key}={value}" for key, value in sorted(event.attributes.items()) if key != "job_id")
    return f"{event.seq:>6}  {event.topic:<26} {facts}"


def get_job(client: BusClient, job_id: str) -> backup_pb2.Job:
    response = client.call(BACKUP_SERVICE, BACKUP + "GetJob", backup_pb2.GetJobRequest(job_id=job_id),
                           backup_pb2.JobResponse, idempotent=True)
    return response.job


def follow(client: BusClient, follower: EventFollower, job_id: str, wait: float, quiet: bool) -> backup_pb2.Job:
    """Follows the job until it ends (events first, GetJob when they are silent); returns it finished."""
    deadline = time.monotonic() + wait
    last_news = time.monotonic()
    while time.monotonic() < deadline:
        finished = False
        for event in follower.poll(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
            if not about_job(event, job_id):
                continue
            last_news = time.monotonic()
            if not quiet:
                print(describe(event), file=sys.stderr, flush=True)
            finished |= event.topic in JOB_ENDED and event.subject == job_id
        if not finished and time.monotonic() - last_news < POLL_AFTER_SILENCE:
            continue
        job = get_job(client, job_id)  # the job's final state and its tasks' messages
        if job.state in FINISHED:
            return job
        last_news = time.monotonic()
    fail(5, f"job {job_id} did not finish within {wait:g} s (see `rampart jobs show {job_id}`)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back up an HA pair and follow the job over the Rampart bus.")
    parser.add_argument("pair", help="the HA pair's name or id")
    parser.add_argument("--bus", default=os.environ.get("RAMPART_BUS", "tcp://127.0.0.1:7400"),
                        help="the broker endpoint (default: $RAMPART_BUS or tcp://127.0.0.1:7400)")
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="json: one JSON document on stdout with the devices, the job and its files")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline of each call, seconds (default 5)")
    parser.add_argument("--wait", type=float, default=300.0, help="how long the backup may take, seconds")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.wait <= 0:
        parser.error("--timeout and --wait must be positive")
    text = args.output == "text"

    with BusClient(args.bus, timeout=args.timeout, program="backup_pair.py") as client:
        try:
            devices = client.call(INVENTORY_SERVICE, LIST_DEVICES, inventory_pb2.ListDevicesRequest(),
                                  inventory_pb2.ListDevicesResponse, idempotent=True).devices
            if text:
                print(f"{'DEVICE':<20} {'ROLE':<16} {'MODEL':<12} STATE")
                for device in sorted(devices, key=lambda d: d.name):
                    state = "connected" if device.connected else "disconnected"
                    print(f"{device.name:<20} {inventory_pb2.Role.Name(device.role):<16} {device.model:<12} {state}")

            # Subscribe before starting: every event of the job comes after the journal's current end.
            follower = EventFollower(client, "backup.")
            try:
                target = backup_pb2.Target(kind=backup_pb2.HA_PAIR, ref=args.pair)
                request = backup_pb2.StartBackupRequest(targets=[target], idempotency_key=str(uuid.uuid4()))
                # Safe to retry: the idempotency key makes a repeated request return the same job.
                job = client.call(BACKUP_SERVICE, BACKUP + "StartBackup", request, backup_pb2.JobResponse,
                                  idempotent=True).job
                print(f"job {job.id}: backing up HA pair {args.pair}", file=sys.stderr, flush=True)
                job = follow(client, follower, job.id, args.wait, quiet=False)
            finally:
                follower.close()
            backups = client.call(BACKUP_SERVICE, BACKUP + "ListBackups", backup_pb2.ListBackupsRequest(job_id=job.id),
                                  backup_pb2.ListBackupsResponse, idempotent=True).backups
        except RPCError as error:
            fail(exit_code(error.status), f"{status_name(error.status)}: {error.message} ({error.answered_by})")

    state = backup_pb2.JobState.Name(job.state)
    files = sorted(backups, key=lambda b: b.file_name)
    if text:
        print(f"job {job.id}: {state}")
        for backup in files:
            print(f"{backup.file_name:<48} {backup.size:>10}  sha256 {backup.sha256}  id {backup.id}")
    else:
        json.dump({
            "devices": [{"id": d.id, "name": d.name, "role": inventory_pb2.Role.Name(d.role), "connected": d.connected}
                        for d in devices],
            "job": {"id": job.id, "state": state},
            "backups": [{"id": b.id, "file_name": b.file_name, "sha256": b.sha256, "size": b.size,
                         "owner_name": b.owner_name, "role": inventory_pb2.Role.Name(b.role)} for b in files],
        }, sys.stdout, indent=2)
        print()
    code = FINISHED[job.state]
    if code != 0:
        reasons = "; ".join(f"{task.target_name}: {task.message}" for task in job.tasks
                            if task.state != backup_pb2.TASK_SUCCEEDED) or "no reason given"
        fail(code, f"backup of {args.pair} {state}: {reasons}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

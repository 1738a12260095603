#!/usr/bin/env bash
# Restore memory benchmark (docs/benchmarks.md, "Restore memory"), on release builds and a throwaway PostgreSQL:
# a device with 1 MiB of configuration is backed up and stopped; for each SIZE its backup gets one more
# file, policies/padding.bin, zero-filled, listed in the manifest with its size and SHA-256, so that the
# archive is about SIZE bytes (a valid backup: every hash checks out); a fresh replacement
# (`device-agent cli --reboot-delay-ms 0`) restores it from its local backups/ folder. For each restore:
# the archive's size, the CLI's peak resident memory (VmHWM of /proc/PID/status when the restore is
# complete, and ru_maxrss when it has exited: what `/usr/bin/time -v` calls "Maximum resident set size"),
# and the time from sending the restore line to "restore: complete".
#   dev/bench-restore-memory.sh [SIZE...]    (bytes; default: 16777216 268435456 1069834240)
# BENCH_SCRATCH_PATH=DIR builds in DIR instead of .build (swift build --scratch-path). The archives and
# the replacements' folders go under a temporary folder in /tmp (about twice the largest SIZE at once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(16777216 268435456 1069834240); fi
# shellcheck source=dev/bench-lib.sh
. "$root/dev/bench-lib.sh"
"$bin/rampart" keys add "$RAMPART_KEYS" --role device rb-fw >/dev/null

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/restore-coordinator"
bg "$bin/storage" --dir "$work/storage"
bg "$bin/backup-worker" --prune-interval-seconds 0
until_ok "$bin/rampart" devices list --timeout 1
until_ok "$bin/rampart" restore status --timeout 1
until_ok "$bin/rampart" jobs list --timeout 1

facts=(--model FPR-3120 --platform physical --software 7.4.1 --patch 2 --network-modules 1 --interface 1GbE-RJ45=8)
"$bin/device-agent" init --dir "$work/original" --name rb-fw --serial RBORIG0001 "${facts[@]}" \
    --management-ip 192.0.2.50 --config-size 1MiB >&2
bg "$bin/device-agent" run --dir "$work/original" --register
original_pid=$!
connected() {  # connected true|false: whether inventory shows rb-fw so
    "$bin/rampart" devices show rb-fw --output json --timeout 2 >"$work/device.json" &&
        python3 -c 'import json,sys; sys.exit(0 if str(json.load(open(sys.argv[1])).get("connected", False)).lower() == sys.argv[2] else 1)' "$work/device.json" "$1"
}
until_ok connected true
"$bin/rampart" backup start rb-fw --wait --timeout 300 >&2
"$bin/rampart" backups list --owner rb-fw --output json >"$work/backups.json"
read -r backup_id file_name < <(python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["backups"][0]; print(b["id"], b["file_name"])' "$work/backups.json")
"$bin/rampart" backups download "$backup_id" -o "$work/$file_name" >&2
echo "backup $file_name: $(stat -c %s "$work/$file_name") bytes" >&2
# R12: the faulty original is disconnected before any restore.
kill "$original_pid"
wait "$original_pid" || true
until_ok connected false

echo "== restores of one backup padded to each size ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$bin" "$work" "$file_name" "${sizes[*]}" "${facts[@]}" <<'PY'
import hashlib, io, json, os, signal, subprocess, sys, tarfile, time

bin, work, file_name, sizes, facts = sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split()], sys.argv[5:]
agent, rampart = f"{bin}/device-agent", f"{bin}/rampart"
PADDING = "policies/padding.bin"
CHUNK = 1 << 20

class Zeros(io.RawIOBase):
    """`size` zero bytes, read a piece at a time."""
    def __init__(self, size): self.left = size
    def readable(self): return True
    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)

def padded(source, target, size):
    """The backup `source` with PADDING added so that `target` is about `size` bytes; returns its size."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    used = sum(512 + (len(data) + 511) // 512 * 512 for _, data in members) + 512 + 2048  # + the manifest entry
    padding = max(0, size - used - 10240)  # tarfile rounds the archive up to a 10 KiB record
    digest = hashlib.sha256()
    for left in range(padding, 0, -CHUNK):
        digest.update(bytes(min(CHUNK, left)))
    manifest["files"] = sorted(manifest["files"] + [{"path": PADDING, "size": padding, "sha256": digest.hexdigest()}],
                               key=lambda f: f["path"].encode())
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files = sorted([(m.name, m, data) for m, data in members[1:]] + [(PADDING, None, None)], key=lambda f: f[0].encode())
    with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as out:
        head = members[0][0]
        head.size = len(text)
        out.addfile(head, io.BytesIO(text))
        for name, member, data in files:
            if member is None:
                info = tarfile.TarInfo(PADDING)
                info.size, info.mode, info.mtime = padding, 0o600, head.mtime
                out.addfile(info, Zeros(padding))
            else:
                out.addfile(member, io.BytesIO(data))
    return os.path.getsize(target)

def read_until(proc, buffer, needle, deadline):
    while needle not in buffer:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {needle!r}; output so far:\n{buffer.decode(errors='replace')}")
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise SystemExit(f"the CLI ended before {needle!r}:\n{buffer.decode(errors='replace')}")
        buffer += chunk
        if b"error: " in buffer:
            raise SystemExit(f"the restore failed:\n{buffer.decode(errors='replace')}")
    return buffer

def vmhwm_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

rows = []
for n, size in enumerate(sizes, start=1):
    archive = f"{work}/padded-{n}.tar"
    actual = padded(f"{work}/{file_name}", archive, size)
    folder = f"{work}/rma-{n}"
    subprocess.run([agent, "init", "--dir", folder, "--name", f"rma-{n}", "--serial", f"RBRMA{n:05d}", *facts,
                    "--management-ip", f"198.51.100.{n + 10}"], check=True, stdout=subprocess.DEVNULL)
    os.link(archive, f"{folder}/backups/{file_name}")
    # A replacement talks to the bus with the key of the device it replaces (docs/security.md).
    proc = subprocess.Popen([agent, "cli", "--dir", folder, "--user", "bench", "--reboot-delay-ms", "0",
                             "--presence-interval-ms", "500"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(f"{work}/cli-{n}.log", "wb"),
                            env=dict(os.environ, RAMPART_KEY=f"{work}/keys/devices/rb-fw.key"))
    try:
        buffer = read_until(proc, b"", b"> ", time.monotonic() + 30)
        start = time.monotonic()
        proc.stdin.write(f"restore remote-manager-backup backup {file_name}\n".encode())
        proc.stdin.flush()
        buffer = read_until(proc, b"", b"restore: complete", time.monotonic() + 600)
        seconds = time.monotonic() - start
        hwm = vmhwm_kib(proc.pid)
        read_until(proc, buffer, b"device: serving", time.monotonic() + 30)
    finally:
        # The restored device now serves the bus; SIGTERM should report it disconnected (R12 for the next one).
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while True:
            waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if waited:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                waited, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.05)
    rows.append((actual, hwm, usage.ru_maxrss, seconds))
    print(f"restore {n}: archive {actual:,} bytes ({actual / (1 << 20):.0f} MiB): peak RSS {hwm / 1024:.1f} MiB "
          f"(VmHWM at completion), {usage.ru_maxrss / 1024:.1f} MiB (ru_maxrss at exit); {seconds:.1f} s", flush=True)
    os.unlink(archive)
    subprocess.run(["rm", "-rf", folder], check=True)
    shown = subprocess.run([rampart, "devices", "show", "rb-fw", "--output", "json"], capture_output=True, check=True)
    if json.loads(shown.stdout).get("connected", False):
        print(f"note: after restore {n} inventory still shows rb-fw connected; recording it disconnected by hand", flush=True)
        subprocess.run([rampart, "devices", "presence", "rb-fw", "disconnected"], check=True, stdout=subprocess.DEVNULL)
print("| archive | peak RSS (VmHWM) | ru_maxrss | restore |")
print("| --- | --- | --- | --- |")
for actual, hwm, maxrss, seconds in rows:
    print(f"| {actual:,} bytes | {hwm / 1024:.1f} MiB | {maxrss / 1024:.1f} MiB | {seconds:.1f} s |")
PY
echo "== done (load average $(cut -d' ' -f1-3 /proc/loadavg))"

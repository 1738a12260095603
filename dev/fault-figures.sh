#!/usr/bin/env bash
# The figures of docs/faults.md: runs the fault tests (FaultTests, InterruptionTests) once through
# dev/test.sh and prints, as a markdown table, what each one measured. Each test prints one line
#   FAULT-FIGURES {"test": …, "targets": N, "stored": N, "duplicates": N, "recoverSeconds": X, …}
# (FaultFigures in Tests/IntegrationTests/FaultSupport.swift). Figures are reported, never asserted.
#   dev/fault-figures.sh [extra dev/test.sh arguments]
# The tests' own output goes to standard error; the table to standard output. Exits with the tests' status.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=$(mktemp /tmp/rampart-fault-figures.XXXXXX)
trap 'rm -f "$out" "$out.lines"' EXIT
status=0
"$root/dev/test.sh" --filter "FaultTests|InterruptionTests" "$@" 2>&1 | tee "$out" >&2 || status=$?

echo "$(date -u +%Y-%m-%d), \`dev/test.sh --filter \"FaultTests|InterruptionTests\"\`, $(nproc) cores:"
echo
grep -o 'FAULT-FIGURES {.*}' "$out" | sed 's/^FAULT-FIGURES //' >"$out.lines" || true
python3 - "$out.lines" <<'PY'
import json, sys
rows = sorted((json.loads(line) for line in open(sys.argv[1]) if line.strip()), key=lambda row: row["test"])
def seconds(value):
    return "—" if value is None else f"{value:.1f}"
def count(row, key):
    unit = row.get("unit", "backups")
    return str(row[key]) if unit == "backups" else f"{row[key]} {unit}"
print("| test | fault | targets | stored | duplicates | fault held (s) | recover (s) | recover: from → until |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for row in rows:
    cells = [f"`{row['test']}`", row["fault"], count(row, "targets"), count(row, "stored"), str(row["duplicates"]),
             seconds(row.get("heldSeconds")), seconds(row["recoverSeconds"]), row["recovery"]]
    print("| " + " | ".join(cells) + " |")
if not rows:
    print("(no FAULT-FIGURES lines: did the tests run?)", file=sys.stderr)
PY
exit "$status"

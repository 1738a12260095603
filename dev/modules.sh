#!/usr/bin/env bash
# The dependency graph of the package's targets (tests left out), as text, from Package.swift itself:
#   dev/modules.sh           prints it
#   dev/modules.sh --check   fails when docs/modules.md does not hold exactly this graph, or when the
#                            graph breaks a layering rule of docs/modules.md: a service's implementation
#                            (a target under Services/*/Service, Services/*/Agent or Services/*/HTTP) is
#                            linked only by its own executable, its own other parts, benchmarks and tests;
#                            RampartBus, RampartCore, RampartAPI, RampartRPC and RampartAudit never link
#                            libpq (Postgres), so bus clients (the CLI, device agents) do not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dump=$(swift package dump-package 2>/dev/null)
graph=$(echo "$dump" | python3 -c '
import json, sys
package = json.load(sys.stdin)
for target in package["targets"]:
    if target["type"] == "test":
        continue
    deps = []
    for dep in target["dependencies"]:
        for kind in ("byName", "target", "product"):
            if kind in dep:
                deps.append(dep[kind][0])
    kind = {"regular": "library", "executable": "executable", "system": "system library"}[target["type"]]
    listed = ", ".join(deps) if deps else "-"
    name = target["name"]
    print(f"{name} ({kind}) -> {listed}")
')
if [ "${1:-}" = "--check" ]; then
    echo "$dump" | python3 -c '
import json, sys
package = json.load(sys.stdin)
targets = {t["name"]: t for t in package["targets"]}
def deps(target):
    for dep in target["dependencies"]:
        for kind in ("byName", "target"):
            if kind in dep and dep[kind][0] in targets:
                yield dep[kind][0]
def folder(target):
    return target.get("path") or ""
def service_of(target):
    parts = folder(target).split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "Services" else None
broken = []
for name, target in targets.items():
    if target["type"] == "test" or folder(target).startswith("Benchmarks/"):
        continue
    for dep in deps(target):
        d = targets[dep]
        if d["type"] == "regular" and service_of(d) and service_of(d) != service_of(target):
            broken.append(f"{name} links {dep}, another service\x27s implementation: link its API (RampartAPI) instead")
def closure(name, seen):
    for dep in deps(targets[name]):
        if dep not in seen:
            seen.add(dep)
            closure(dep, seen)
    return seen
for name in ("RampartBus", "RampartCore", "RampartAPI", "RampartRPC", "RampartAudit"):
    if "Postgres" in closure(name, set()):
        broken.append(f"{name} links Postgres (libpq): bus clients must not")
for line in broken:
    print(line, file=sys.stderr)
sys.exit(1 if broken else 0)
' || { echo "docs/modules.md: a layering rule is broken (above)" >&2; exit 1; }
    documented=$(awk '/^<!-- graph: dev\/modules.sh -->/{on=1; next} /^<!-- end graph -->/{on=0} on' docs/modules.md | sed '/^```/d')
    if [ "$documented" != "$graph" ]; then
        echo "docs/modules.md's graph is stale: run dev/modules.sh and paste its output there" >&2
        diff <(echo "$documented") <(echo "$graph") >&2 || true
        exit 1
    fi
    echo "docs/modules.md's graph is current"
else
    echo "$graph"
fi

#!/usr/bin/env bash
# The dependency graph of the package's targets (tests left out), as text, from Package.swift itself:
#   dev/modules.sh           prints it
#   dev/modules.sh --check   fails when docs/modules.md does not hold exactly this graph
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
graph=$(swift package dump-package 2>/dev/null | python3 -c '
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

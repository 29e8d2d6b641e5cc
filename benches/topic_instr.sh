#!/usr/bin/env bash
# Instructions per lookup and per insert + remove, mqtt-topic against
# quill-pubsub, counted by callgrind over the `topic` bench's filter sets
# and names (stable on a noisy shared machine, unlike time).
#
# Usage: benches/topic_instr.sh [sizes...]   (from anywhere; default 1000 100000)
#        KEEP=dir benches/topic_instr.sh     (keep the callgrind.out files)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

bin=$(cargo bench -p mqtt-benches --bench topic_instr --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "topic_instr" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "could not build topic_instr" >&2; exit 1; }

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 100000)

count() { # engine size mode ops -> instructions per operation
    local f="$out/callgrind.out.$1.$2.$3"
    valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect="*$3_all*" "$bin" "$1" "$2" "$3" >/dev/null 2>"$f.log"
    local ir
    ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo $((ir / $4))
}

echo "| engine | size | instr/lookup | instr/insert+remove |"
echo "|---|---:|---:|---:|"
for size in "${sizes[@]}"; do
    for e in mqtt-topic quill-pubsub; do
        echo "| $e | $size | $(count "$e" "$size" lookup 4096) | $(count "$e" "$size" churn 1024) |"
    done
done

#!/usr/bin/env bash
# Instructions per message through the session layer, mqtt-session against
# mqtt-protocol-core, counted by callgrind (stable on a noisy shared machine,
# unlike time).
#
# Builds the `session_instr` bench binary (release, debug info) and runs it
# once per library, protocol version and QoS under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*publish_all*'
# so that only the 10,000 publishes (each through its whole flow: client
# publish, bytes to the server, server events, acknowledgements back, client
# events) are counted; connecting and a 100-message warm-up are not.
# Prints a markdown table.
#
# Usage: benches/session_instr.sh          (from the workspace root)
#        KEEP=dir benches/session_instr.sh (keep the callgrind.out files in
#                                           dir, for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

bin=$(cargo bench -p mqtt-benches --bench session_instr --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "session_instr" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "could not build session_instr" >&2; exit 1; }

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
messages=10000

count() { # library version qos -> instructions per message (or "—")
    local f="$out/callgrind.out.$1.$2.qos$3"
    if valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect='*publish_all*' "$bin" "$1" "$2" "$3" >/dev/null 2>"$f.log"; then
        local ir
        ir=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)/\1/p' "$f.log")
        echo $(((ir + messages / 2) / messages))
    else
        echo "—"
    fi
}

echo "| version | QoS | mqtt-session | mqtt-protocol-core | ratio |"
echo "|---|---|---:|---:|---:|"
for v in 3.1.1 5.0; do
    for q in 0 1 2; do
        ours=$(count mqtt-session "$v" "$q")
        theirs=$(count mqtt-protocol-core "$v" "$q")
        ratio=$(python3 -c "print(f'{$theirs/$ours:.2f}x')" 2>/dev/null || echo "—")
        echo "| $v | $q | $ours | $theirs | $ratio |"
    done
done
echo
echo "(instructions per message, client and server together, each message"
echo " through its whole QoS flow; ratio: mqtt-protocol-core / mqtt-session)"
[ -n "${KEEP:-}" ] || rm -rf "$out"

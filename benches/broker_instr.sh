#!/usr/bin/env bash
# Instructions per delivered message through the broker, counted by
# callgrind (stable on a noisy shared machine, unlike time).
#
# Builds the `broker_instr` bench binary (release, debug info) and runs each
# workload (see benches/benches/broker_workload/mod.rs) once under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_all*'
# so that only the measured rounds count (connecting, subscribing and the
# warm-up rounds do not). From the same profile, callgrind_annotate's
# inclusive cost of the `broker_call_*` functions (every call into the
# broker: handle_read, poll_transmit, poll_event, poll_timeout, and dropping
# the chunks poll_transmit handed out) gives the broker's share, without the
# clients'. Prints a markdown table.
#
# Usage: benches/broker_instr.sh          (from the workspace root)
#        KEEP=dir benches/broker_instr.sh (keep the callgrind.out files in
#                                          dir, for callgrind_annotate)
#        ONLY="fanout:0 routing:0" benches/broker_instr.sh   (a subset)
# The routing workload builds 1,000,000 subscriptions under valgrind: about
# 3 minutes on its own.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

bin=$(cargo bench -p mqtt-benches --bench broker_instr --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "broker_instr" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "could not build broker_instr" >&2; exit 1; }

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
cases=${ONLY:-"fanout:0 fanout:1 fanout:2 fanout-plus:0 fanout-plus:1 fanout-plus:2 fanout-broker-only:0 fanin:0 fanin:1 fanin:2 routing:0"}

echo "| workload | QoS | deliveries | messages | total / delivery | broker / delivery | broker / message |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in $cases; do
    w=${c%:*}
    q=${c#*:}
    f="$out/callgrind.out.$w.qos$q"
    if ! valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect='*measure_all*' "$bin" "$w" "$q" >"$f.stdout" 2>"$f.log"; then
        echo "| $w | $q | — | — | — | — | — |"
        continue
    fi
    total=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)/\1/p' "$f.log")
    d=$(sed -n 's/.*deliveries=\([0-9]*\).*/\1/p' "$f.stdout")
    m=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' "$f.stdout")
    broker=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$f" 2>/dev/null |
        python3 -c 'import re,sys
best = {}
for l in sys.stdin:
    # A function inlined from several files has one line per file, and
    # with --inclusive=yes each of them may carry the whole inclusive
    # cost (they overlap): count each function once, at its largest line.
    m = re.match(r"\s*([\d,]+) \([\d. ]+%\)  [^=].*broker_workload::(broker_call_\w+)", l)
    if m:
        n = int(m.group(1).replace(",", ""))
        best[m.group(2)] = max(best.get(m.group(2), 0), n)
print(sum(best.values()))')
    python3 -c "
t, b, d, m = $total, $broker, $d, $m
print(f'| $w | $q | {d:,} | {m:,} | {t/d:,.0f} | {b/d:,.0f} | {b/m:,.0f} |')"
done
echo
echo "(instructions; total: everything in the measured rounds, clients included;"
echo " broker: inside the broker's entry points only)"
[ -n "${KEEP:-}" ] || rm -rf "$out"

#!/usr/bin/env bash
# Instructions per decoded PUBLISH, mqtt-wire against the peer codecs,
# counted by callgrind (stable on a noisy shared machine, unlike time).
#
# Builds the `wire_instr` bench binary (release, debug info) and runs it once
# per codec and workload under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*decode_all*'
# so that only the loop decoding (and dropping) 10,000 packets is counted;
# building the stream and the codec's input is not. Prints a markdown table.
#
# Workloads: 3.1.1 PUBLISH QoS 0, 16 B payload, topic
# home/floor1/room23/temperature; 5.0 the same with two properties (a content
# type and a user property). Targets (issue 2): <= 400 and <= 600. Also the
# mixed streams (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ), per packet.
#
# Usage: benches/instr.sh          (from the workspace root)
#        KEEP=dir benches/instr.sh (keep the callgrind.out files in dir, for
#                                   callgrind_annotate --auto=yes)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

bin=$(cargo bench -p mqtt-benches --bench wire_instr --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "wire_instr" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "could not build wire_instr" >&2; exit 1; }

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
packets=10000

count() { # codec workload [decode|encode] -> instructions per packet (or "—")
    local mode=${3:-decode}
    local f="$out/callgrind.out.$1.$2.$mode"
    if valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=no \
        --toggle-collect="*${mode}_all*" "$bin" "$1" "$2" "$mode" >/dev/null 2>"$f.log"; then
        local ir
        ir=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)/\1/p' "$f.log")
        echo $(((ir + packets / 2) / packets))
    else
        echo "—"
    fi
}

echo "| codec | 3.1.1 PUBLISH QoS 0 16 B | 5.0 PUBLISH + 2 properties | 3.1.1 mixed | 5.0 mixed |"
echo "|---|---|---|---|---|"
for codec in mqtt-wire mqtt-wire-bytes mqtt-wire-borrowed rumqttc rmqtt-codec mqtt-protocol-core mqtt-proto mqttrs; do
    label=$codec
    [ "$codec" = mqtt-wire-borrowed ] && label="mqtt-wire (borrowed)"
    echo "| $label | $(count "$codec" v311) | $(count "$codec" v5) | $(count "$codec" mixed311) | $(count "$codec" mixed5) |"
done
echo
echo "(instructions per decoded packet, decode + drop; target: <= 400 for 3.1.1, <= 600 for 5.0;"
echo " mixed: average over CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ)"
echo
echo "| codec | encode 3.1.1 PUBLISH QoS 0 16 B | encode 5.0 PUBLISH + 2 properties |"
echo "|---|---|---|"
for codec in mqtt-wire rumqttc rmqtt-codec mqtt-protocol-core mqtt-proto mqttrs; do
    echo "| $codec | $(count "$codec" v311 encode) | $(count "$codec" v5 encode) |"
done
echo
echo "(instructions per encoded packet, appended to one buffer; rmqtt-codec's count"
echo " includes dropping the packet its Encoder takes by value)"
[ -n "${KEEP:-}" ] || rm -rf "$out"

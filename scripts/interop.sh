#!/usr/bin/env bash
# Interoperability: real MQTT clients (mosquitto_pub / mosquitto_sub and
# paho-mqtt 2.x, MQTT 3.1.1 and 5.0) against the broker example
# (crates/mqtt-broker/examples/broker).
#
#   bash scripts/interop.sh
#
# Installs what it needs when missing (Debian: mosquitto-clients, openssl,
# python3-pip; PyPI: paho-mqtt>=2), builds the example once, starts two
# brokers on free 127.0.0.1 ports (one open, with TLS and WebSocket
# listeners; one with a password file and an ACL), runs every scenario and
# stops them (and a third with --persist, killed with -9 and restarted).
# Prints `PASS name` or `FAIL name: why` per scenario and a
# last line `N passed, M failed`; exits non-zero when any failed. Leaves
# nothing behind outside /tmp (and the cargo target directory).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- what it needs ----------------------------------------------------------

install_deps() {
    local need=()
    command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
    command -v mosquitto_passwd >/dev/null 2>&1 || need+=(mosquitto)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    local has_paho='import sys, paho.mqtt as m; sys.exit(int(m.__version__.split(".")[0]) < 2)'
    if ! python3 -c "$has_paho" 2>/dev/null; then
        echo "installing paho-mqtt>=2" >&2
        python3 -m pip install -q 'paho-mqtt>=2' >/dev/null 2>&1 ||
            python3 -m pip install -q --break-system-packages 'paho-mqtt>=2' >/dev/null
    fi
}
install_deps

# ---- the broker ---------------------------------------------------------------

cargo build --release -q -p mqtt-broker --example broker
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BROKER="$target_dir/release/examples/broker"

TMP=$(mktemp -d /tmp/mqtt-interop.XXXXXX)
PIDS=()
cleanup() {
    local p
    [ -f "$TMP/persist.pid" ] && PIDS+=("$(cat "$TMP/persist.pid")")
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port
    local i
    for ((i = 0; i < 100; i++)); do
        if python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "broker did not open port $1" >&2
    return 1
}

# A self-signed certificate for localhost / 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

# Users and their rights for the second broker.
mosquitto_passwd -c -b "$TMP/passwd" alice alicepw
mosquitto_passwd -b "$TMP/passwd" bob bobpw
cat >"$TMP/acl" <<'EOF'
# alice: her own tree, and public
user alice
topic readwrite alice/#
topic read public/#
# bob: writes anywhere under secret and public, reads secret
user bob
topic readwrite secret/#
topic write public/#
topic write alice/#
# every client: its own status topic
pattern write status/%c
EOF

PORT=$(free_port)
TLS_PORT=$(free_port)
WS_PORT=$(free_port)
AUTH_PORT=$(free_port)

timeout 600 "$BROKER" --listen "127.0.0.1:$PORT" --tls-listen "127.0.0.1:$TLS_PORT" \
    --cert "$TMP/cert.pem" --key "$TMP/key.pem" --ws-listen "127.0.0.1:$WS_PORT" \
    >"$TMP/broker.log" 2>&1 &
PIDS+=($!)
timeout 600 "$BROKER" --listen "127.0.0.1:$AUTH_PORT" --password-file "$TMP/passwd" \
    --acl-file "$TMP/acl" >"$TMP/broker-auth.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"
wait_port "$TLS_PORT"
wait_port "$WS_PORT"
wait_port "$AUTH_PORT"

# ---- helpers -------------------------------------------------------------------

PASSED=0
FAILED=0
FAILURES=()

# run NAME FUNCTION: PASS if the function returns 0; its output is the why.
run() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "PASS $name"
        PASSED=$((PASSED + 1))
    else
        out=$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-400)
        echo "FAIL $name: ${out:-failed}"
        FAILED=$((FAILED + 1))
        FAILURES+=("$name")
    fi
}

# Received messages are printed as  MSG|topic|qos|retain|payload
FMT='MSG|%t|%q|%r|%p'

# sub_bg FILE ARGS...: mosquitto_sub in the background (its pid in SUB_PID;
# ARGS must bound it with -W), returns once its SUBACK arrived.
sub_bg() {
    local out=$1 i
    shift
    # Line-buffered: the SUBACK line must reach the file while it runs.
    stdbuf -oL mosquitto_sub -d -F "$FMT" "$@" >"$out" 2>&1 &
    SUB_PID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "received SUBACK" "$out" 2>/dev/null && return 0
        if ! kill -0 "$SUB_PID" 2>/dev/null; then
            echo "mosquitto_sub exited before SUBACK: $(tr '\n' ' ' <"$out")"
            return 1
        fi
        sleep 0.05
    done
    echo "no SUBACK: $(tr '\n' ' ' <"$out")"
    return 1
}

# msgs FILE: the received messages only.
msgs() { grep '^MSG|' "$1" || true; }

# expect_msgs FILE EXPECTED: the messages, in order.
expect_msgs() {
    local got
    got=$(msgs "$1")
    if [ "$got" != "$2" ]; then
        echo "expected [$2] got [$got]"
        return 1
    fi
}

pub() { timeout 10 mosquitto_pub -h 127.0.0.1 "$@"; }

# ---- scenarios: mosquitto clients ------------------------------------------------

qos() { # version qos
    local v=$1 q=$2 t="interop/qos/$1/$2" f="$TMP/qos-$1-$2"
    sub_bg "$f" -h 127.0.0.1 -p "$PORT" -V "$v" -q "$q" -t "$t" -C 1 -W 5 || return 1
    pub -p "$PORT" -V "$v" -q "$q" -t "$t" -m "hello $q" || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|$t|$q|0|hello $q"
}

wildcards() { # version
    local v=$1 f="$TMP/wc-$1" b="wc$1"
    sub_bg "$f" -h 127.0.0.1 -p "$PORT" -V "$v" -t "$b/+/temp" -t "$b/x/#" -C 3 -W 5 || return 1
    pub -p "$PORT" -V "$v" -t "$b/a/b/temp" -m no1 || return 1 # + is one level
    pub -p "$PORT" -V "$v" -t "$b/y/z" -m no2 || return 1
    pub -p "$PORT" -V "$v" -t "$b/k/temp" -m plus || return 1
    pub -p "$PORT" -V "$v" -t "$b/x" -m hash-parent || return 1 # # matches the parent
    pub -p "$PORT" -V "$v" -t "$b/x/1/2/3" -m hash-deep || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|$b/k/temp|0|0|plus
MSG|$b/x|0|0|hash-parent
MSG|$b/x/1/2/3|0|0|hash-deep"
}

retained() { # version
    local v=$1 t="interop/retained/$1" f="$TMP/ret-$1"
    pub -p "$PORT" -V "$v" -q 1 -r -t "$t" -m kept || return 1
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V "$v" -F "$FMT" -t "$t" -C 1 -W 3 >"$f" || true
    expect_msgs "$f" "MSG|$t|0|1|kept" || return 1
    pub -p "$PORT" -V "$v" -r -n -t "$t" || return 1 # an empty retained message clears
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V "$v" -F "$FMT" -t "$t" -C 1 -W 2 >"$f" || true
    expect_msgs "$f" "" || { echo "(after clearing)"; return 1; }
}

will_on_abrupt_close() { # version
    local v=$1 t="interop/will/$1" f="$TMP/will-$1" w="$TMP/willer-$1" wpid
    sub_bg "$f" -h 127.0.0.1 -p "$PORT" -V "$v" -t "$t" -C 1 -W 5 || return 1
    local sub=$SUB_PID
    sub_bg "$w" -h 127.0.0.1 -p "$PORT" -V "$v" -i "willer-$v" -t "interop/idle" \
        --will-topic "$t" --will-payload "gone" --will-qos 1 -W 20 || return 1
    wpid=$SUB_PID
    kill -9 "$wpid" # no DISCONNECT: the socket just closes
    wait "$wpid" 2>/dev/null || true
    wait "$sub" || true
    expect_msgs "$f" "MSG|$t|0|0|gone"
}

no_will_on_disconnect() { # version
    local v=$1 t="interop/nowill/$1" f="$TMP/nowill-$1"
    sub_bg "$f" -h 127.0.0.1 -p "$PORT" -V "$v" -t "$t" -t "interop/nowill/end/$v" -C 1 -W 5 || return 1
    # mosquitto_pub ends with DISCONNECT 0x00: no Will.
    pub -p "$PORT" -V "$v" -i "nowill-$v" --will-topic "$t" --will-payload "wrong" \
        -t "interop/nowill/other" -m x || return 1
    sleep 0.3
    pub -p "$PORT" -V "$v" -t "interop/nowill/end/$v" -m end || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|interop/nowill/end/$v|0|0|end"
}

persistent_session() { # version
    local v=$1 t="interop/persist/$1" f="$TMP/persist-$1" id="persist-$1" x=()
    [ "$v" = 5 ] && x=(-x 300)
    # Subscribe with a persistent session, then leave.
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V "$v" -c -i "$id" "${x[@]}" -q 1 -t "$t" -E ||
        { echo "first subscribe failed"; return 1; }
    local i
    for i in 1 2 3; do pub -p "$PORT" -V "$v" -q 1 -t "$t" -m "m$i" || return 1; done
    # Back: the queued messages arrive without subscribing again.
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V "$v" -c -i "$id" "${x[@]}" -q 1 \
        -t "interop/persist/unrelated" -F "$FMT" -C 3 -W 5 >"$f" || true
    expect_msgs "$f" "MSG|$t|1|0|m1
MSG|$t|1|0|m2
MSG|$t|1|0|m3"
}

shared_subscription() {
    local t="interop/shared" a="$TMP/share-a" b="$TMP/share-b" pa pb i
    sub_bg "$a" -h 127.0.0.1 -p "$PORT" -V 5 -q 1 -t "\$share/g/$t" -W 3 || return 1
    pa=$SUB_PID
    sub_bg "$b" -h 127.0.0.1 -p "$PORT" -V 5 -q 1 -t "\$share/g/$t" -W 3 || return 1
    pb=$SUB_PID
    for i in $(seq 1 10); do pub -p "$PORT" -V 5 -q 1 -t "$t" -m "s$i" || return 1; done
    wait "$pa" || true
    wait "$pb" || true
    local na nb all
    na=$(msgs "$a" | wc -l)
    nb=$(msgs "$b" | wc -l)
    all=$( (msgs "$a"; msgs "$b") | cut -d'|' -f5 | sort -V | tr '\n' ' ')
    if [ "$all" != "s1 s2 s3 s4 s5 s6 s7 s8 s9 s10 " ]; then
        echo "each message to exactly one member: got [$all]"
        return 1
    fi
    if [ "$na" -eq 0 ] || [ "$nb" -eq 0 ]; then
        echo "one member got everything ($na / $nb)"
        return 1
    fi
}

message_expiry() {
    local t="interop/expiry" f="$TMP/expiry" id="expiry-sub"
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V 5 -c -i "$id" -x 300 -q 1 -t "$t" -E ||
        { echo "first subscribe failed"; return 1; }
    pub -p "$PORT" -V 5 -q 1 -t "$t" -m short -D publish message-expiry-interval 1 || return 1
    pub -p "$PORT" -V 5 -q 1 -t "$t" -m long -D publish message-expiry-interval 300 || return 1
    sleep 2.2
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V 5 -c -i "$id" -x 300 -q 1 \
        -t "interop/expiry/unrelated" -F "$FMT" -C 2 -W 3 >"$f" || true
    expect_msgs "$f" "MSG|$t|1|0|long"
}

session_expiry() {
    local t="interop/sexpiry" f="$TMP/sexpiry" id="sexpiry-sub"
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" -V 5 -c -i "$id" -x 1 -q 1 -t "$t" -E ||
        { echo "first subscribe failed"; return 1; }
    sleep 2.2 # the session expires one second after the disconnect
    pub -p "$PORT" -V 5 -q 1 -t "$t" -m late || return 1
    timeout 10 mosquitto_sub -d -h 127.0.0.1 -p "$PORT" -V 5 -c -i "$id" -x 1 -q 1 \
        -t "interop/sexpiry/unrelated" -F "$FMT" -C 1 -W 2 >"$f" || true
    expect_msgs "$f" "" || return 1
    grep -q "received CONNACK (0)" "$f" || { echo "no CONNACK 0: $(tr '\n' ' ' <"$f")"; return 1; }
}

tls() {
    local t="interop/tls" f="$TMP/tls"
    sub_bg "$f" -h localhost -p "$TLS_PORT" --cafile "$TMP/cert.pem" -q 1 -t "$t" -C 1 -W 5 || return 1
    timeout 10 mosquitto_pub -h localhost -p "$TLS_PORT" --cafile "$TMP/cert.pem" -q 1 -t "$t" -m secure ||
        return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|$t|1|0|secure"
}

tls_plain_client_refused() {
    # A plain MQTT client on the TLS port must fail, and the broker go on.
    if timeout 10 mosquitto_pub -h 127.0.0.1 -p "$TLS_PORT" -t x -m y 2>/dev/null; then
        echo "plain CONNECT accepted on the TLS port"
        return 1
    fi
    pub -p "$PORT" -t interop/alive -m ok
}

password_ok() {
    local t="alice/inbox" f="$TMP/pw-ok"
    sub_bg "$f" -h 127.0.0.1 -p "$AUTH_PORT" -u alice -P alicepw -t "$t" -C 1 -W 5 || return 1
    pub -p "$AUTH_PORT" -u bob -P bobpw -t "$t" -m "for alice" || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|$t|0|0|for alice"
}

password_refused() { # version
    local v=$1 out
    if out=$(pub -p "$AUTH_PORT" -V "$v" -u alice -P wrong -t alice/x -m x 2>&1); then
        echo "wrong password accepted"
        return 1
    fi
    if ! printf '%s' "$out" | grep -qiE "bad user name or password|not authori"; then
        echo "unexpected refusal: $out"
        return 1
    fi
    if pub -p "$AUTH_PORT" -V "$v" -t alice/x -m x 2>/dev/null; then
        echo "anonymous client accepted with a password file"
        return 1
    fi
}

acl_read_forbidden() {
    local f="$TMP/acl-read" out
    # alice may not subscribe to secret/#: refused in SUBACK.
    out=$(timeout 10 mosquitto_sub -h 127.0.0.1 -p "$AUTH_PORT" -V 5 -u alice -P alicepw \
        -t "secret/#" -C 1 -W 3 -F "$FMT" 2>&1 || true)
    if printf '%s' "$out" | grep -q '^MSG|'; then
        echo "alice received a secret: $out"
        return 1
    fi
    printf '%s' "$out" | grep -q "denied" || { echo "no SUBACK refusal: $out"; return 1; }
    # ... while bob may, and gets bob's message.
    sub_bg "$f" -h 127.0.0.1 -p "$AUTH_PORT" -u bob -P bobpw -t "secret/#" -C 1 -W 5 || return 1
    pub -p "$AUTH_PORT" -u bob -P bobpw -t secret/plan -m s1 || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|secret/plan|0|0|s1"
}

acl_write_forbidden() {
    local f="$TMP/acl-write"
    sub_bg "$f" -h 127.0.0.1 -p "$AUTH_PORT" -V 5 -u bob -P bobpw -t "secret/#" -C 1 -W 5 || return 1
    # alice may not write to secret/: dropped (PUBACK 0x87 in 5.0).
    pub -p "$AUTH_PORT" -V 5 -q 1 -u alice -P alicepw -t secret/plan -m forged 2>/dev/null || true
    pub -p "$AUTH_PORT" -V 5 -q 1 -u alice -P alicepw -i alice1 -t status/alice1 -m allowed || return 1
    pub -p "$AUTH_PORT" -V 5 -q 1 -u bob -P bobpw -t secret/plan -m real || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|secret/plan|0|0|real"
}

# ---- scenarios: paho (5.0 properties, aliases, WebSockets) ------------------------

cat >"$TMP/paho_check.py" <<'EOF'
"""paho-mqtt 2.x checks against the broker; exits 1 with the reason."""
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = int(sys.argv[2])
WS_PORT = int(sys.argv[3])
TIMEOUT = 5


class Fail(Exception):
    pass


def client(cid, transport="tcp", port=PORT, version=mqtt.MQTTv5):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                    transport=transport)
    connected = threading.Event()
    result = {}

    def on_connect(cl, ud, flags, rc, props):
        result["rc"] = rc
        connected.set()

    c.on_connect = on_connect
    c.inbox = queue.Queue()
    c.on_message = lambda cl, ud, m: c.inbox.put(m)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not connected.wait(TIMEOUT):
        raise Fail(f"{cid}: no CONNACK")
    if result["rc"].is_failure:
        raise Fail(f"{cid}: refused {result['rc']}")
    return c


def subscribe(c, topic, qos=1):
    done = threading.Event()
    c.on_subscribe = lambda cl, ud, mid, rcs, props: done.set()
    c.subscribe(topic, qos)
    if not done.wait(TIMEOUT):
        raise Fail(f"no SUBACK for {topic}")


def receive(c, what):
    try:
        return c.inbox.get(timeout=TIMEOUT)
    except queue.Empty:
        raise Fail(f"no message: {what}") from None


def publish(c, topic, payload, qos=1, props=None):
    info = c.publish(topic, payload, qos=qos, properties=props)
    info.wait_for_publish(TIMEOUT)
    if not info.is_published():
        raise Fail(f"publish to {topic!r} not acknowledged")


def check(what, got, want):
    if got != want:
        raise Fail(f"{what}: got {got!r}, want {want!r}")


def properties():
    sub = client("props-sub")
    subscribe(sub, "interop/props")
    pub = client("props-pub")
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("k1", "v1"), ("k2", "v2"), ("k1", "v3")]
    p.ContentType = "application/json"
    p.ResponseTopic = "interop/props/reply"
    p.CorrelationData = b"\x00\x01corr"
    p.MessageExpiryInterval = 120
    p.PayloadFormatIndicator = 1
    publish(pub, "interop/props", b'{"a":1}', props=p)
    m = receive(sub, "the message with properties")
    q = m.properties
    check("payload", m.payload, b'{"a":1}')
    check("user properties (in order)", getattr(q, "UserProperty", None),
          [("k1", "v1"), ("k2", "v2"), ("k1", "v3")])
    check("content type", getattr(q, "ContentType", None), "application/json")
    check("response topic", getattr(q, "ResponseTopic", None), "interop/props/reply")
    check("correlation data", getattr(q, "CorrelationData", None), b"\x00\x01corr")
    check("payload format", getattr(q, "PayloadFormatIndicator", None), 1)
    exp = getattr(q, "MessageExpiryInterval", None)
    if exp is None or not 100 <= exp <= 120:
        raise Fail(f"message expiry interval: got {exp!r}, want 100..120")


def request_response():
    responder = client("responder")

    def answer(cl, ud, m):
        r = Properties(PacketTypes.PUBLISH)
        r.CorrelationData = m.properties.CorrelationData
        cl.publish(m.properties.ResponseTopic, b"answer to " + m.payload, qos=1, properties=r)

    subscribe(responder, "interop/service")
    responder.on_message = answer
    requester = client("requester")
    subscribe(requester, "interop/reply/requester")
    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = "interop/reply/requester"
    p.CorrelationData = b"req-42"
    publish(requester, "interop/service", b"question", props=p)
    m = receive(requester, "the response")
    check("response topic", m.topic, "interop/reply/requester")
    check("response", m.payload, b"answer to question")
    check("correlation data", m.properties.CorrelationData, b"req-42")


def topic_alias():
    sub = client("alias-sub")
    subscribe(sub, "interop/alias/#")
    pub = client("alias-pub")
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = 1
    publish(pub, "interop/alias/long/topic/name", b"one", props=p)   # sets alias 1
    publish(pub, "", b"two", props=p)                                # uses alias 1
    p2 = Properties(PacketTypes.PUBLISH)
    p2.TopicAlias = 1
    publish(pub, "interop/alias/other", b"three", props=p2)          # remaps alias 1
    publish(pub, "", b"four", props=p2)
    got = [(m.topic, m.payload) for m in (receive(sub, f"message {i}") for i in range(4))]
    check("messages", got, [("interop/alias/long/topic/name", b"one"),
                            ("interop/alias/long/topic/name", b"two"),
                            ("interop/alias/other", b"three"),
                            ("interop/alias/other", b"four")])


def websockets():
    for version, name in ((mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5.0")):
        sub = client(f"ws-sub-{name}", transport="websockets", port=WS_PORT, version=version)
        subscribe(sub, "interop/ws/#")
        wpub = client(f"ws-pub-{name}", transport="websockets", port=WS_PORT, version=version)
        publish(wpub, "interop/ws/a", b"x" * 70000)      # spans WebSocket frames
        tpub = client(f"tcp-pub-{name}", version=version)
        publish(tpub, "interop/ws/b", b"from tcp")
        m1 = receive(sub, f"{name}: the message over WebSockets")
        m2 = receive(sub, f"{name}: the message from TCP")
        check(f"{name} ws message", (m1.topic, len(m1.payload)), ("interop/ws/a", 70000))
        check(f"{name} tcp message", (m2.topic, m2.payload), ("interop/ws/b", b"from tcp"))
        for c in (sub, wpub, tpub):
            c.disconnect()
            c.loop_stop()


try:
    {"properties": properties, "request_response": request_response,
     "topic_alias": topic_alias, "websockets": websockets}[sys.argv[1]]()
except Fail as e:
    print(e)
    sys.exit(1)
except Exception as e:  # noqa: BLE001 - report anything as a failure
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
sys.exit(0)
EOF

paho() { timeout 30 python3 "$TMP/paho_check.py" "$1" "$PORT" "$WS_PORT"; }

slow_consumer_isolated() {
    # A subscriber that never reads is disconnected once its output piles
    # up (--max-write-buffer); a subscriber that reads gets everything.
    timeout 60 python3 - "$PORT" <<'PY' || return 1
import socket, sys, threading, time
import paho.mqtt.client as mqtt

port = int(sys.argv[1])
n, size = 300, 65536
# The slow one: CONNECT (3.1.1, client id "slow"), SUBSCRIBE flood/#, then
# never reads.
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
var = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x04slow"
s.sendall(bytes([0x10, len(var)]) + var)
sub = b"\x00\x01\x00\x07flood/#\x00"
s.sendall(bytes([0x82, len(sub)]) + sub)
got, done, subscribed = [], threading.Event(), threading.Event()
fast = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fast")
fast.on_subscribe = lambda *a: subscribed.set()
def on_message(cl, ud, m):
    got.append(len(m.payload))
    if len(got) == n:
        done.set()
fast.on_message = on_message
fast.connect("127.0.0.1", port)
fast.loop_start()
fast.subscribe("flood/#", 0)
if not subscribed.wait(5):
    sys.exit("fast subscriber: no SUBACK")
time.sleep(0.3)
flooder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder")
flooder.connect("127.0.0.1", port)
flooder.loop_start()
for _ in range(n):
    flooder.publish("flood/x", b"x" * size, qos=0)
if not done.wait(20):
    sys.exit(f"the reading subscriber got {len(got)} of {n}")
PY
    local i
    for ((i = 0; i < 50; i++)); do
        grep -q "reads too slowly" "$TMP/broker.log" && return 0
        sleep 0.1
    done
    echo "the non-reading subscriber was not disconnected"
    return 1
}

graceful_shutdown() {
    # SIGTERM: connected clients are told (DISCONNECT in 5.0), the broker
    # stops cleanly (its last log line; this subshell cannot `wait` it).
    local f="$TMP/shutdown" pid=${PIDS[1]} i
    sub_bg "$f" -h 127.0.0.1 -p "$AUTH_PORT" -V 5 -u bob -P bobpw -t "secret/#" -W 20 || return 1
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "still running 5 s after SIGTERM"
        return 1
    fi
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    grep -qi "received DISCONNECT" "$f" || { echo "no DISCONNECT: $(tr '\n' ' ' <"$f")"; return 1; }
    grep -q "stopped" "$TMP/broker-auth.log" || { echo "no 'stopped' in the log"; return 1; }
}

persistence_across_kill9() {
    # --persist: a persistent session's queued messages and a retained
    # message survive kill -9 and a restart.
    local port dir="$TMP/persist" f="$TMP/persist-out" pid v
    port=$(free_port)
    start() {
        # Not under `timeout`: kill -9 must reach the broker itself. The
        # EXIT trap stops it through the pid file.
        "$BROKER" --listen "127.0.0.1:$port" --persist "$dir" \
            >>"$TMP/broker-persist.log" 2>&1 &
        echo $! >"$TMP/persist.pid"
        wait_port "$port"
    }
    start || return 1
    for v in mqttv311 5; do
        local x=()
        [ "$v" = 5 ] && x=(-x 300)
        timeout 10 mosquitto_sub -h 127.0.0.1 -p "$port" -V "$v" -c -i "durable-$v" "${x[@]}" \
            -q 1 -t "durable/#" -E || { echo "subscribe failed"; return 1; }
    done
    pub -p "$port" -q 1 -t durable/a -m d1 || return 1
    pub -p "$port" -q 2 -t durable/b -m d2 || return 1
    pub -p "$port" -q 1 -r -t kept/topic -m kept || return 1
    pid=$(cat "$TMP/persist.pid")
    kill -9 "$pid"
    sleep 0.3
    start || return 1
    for v in mqttv311 5; do
        local x=()
        [ "$v" = 5 ] && x=(-x 300)
        timeout 10 mosquitto_sub -h 127.0.0.1 -p "$port" -V "$v" -c -i "durable-$v" "${x[@]}" -q 1 \
            -t "durable/unrelated" -F "$FMT" -C 2 -W 5 >"$f" || true
        expect_msgs "$f" "MSG|durable/a|1|0|d1
MSG|durable/b|1|0|d2" || { echo "($v session)"; return 1; }
    done
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$port" -F "$FMT" -t kept/topic -C 1 -W 3 >"$f" || true
    expect_msgs "$f" "MSG|kept/topic|0|1|kept" || { echo "(retained)"; return 1; }
    kill "$(cat "$TMP/persist.pid")" 2>/dev/null || true
}

broker_still_serves() {
    # Both brokers still alive after everything above (no panic, no exit).
    local p
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || { echo "a broker exited"; return 1; }
    done
    pub -p "$PORT" -q 1 -t interop/alive -m ok
}

garbage_client_isolated() {
    # A client sending garbage is closed; another client is not disturbed.
    local f="$TMP/garbage"
    sub_bg "$f" -h 127.0.0.1 -p "$PORT" -V 5 -q 1 -t interop/garbage -C 1 -W 5 || return 1
    python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'\x10\xff\xff\xff\xff\x7f' + b'\x00' * 64)   # CONNECT with a bad length
s.settimeout(3)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
"
    pub -p "$PORT" -V 5 -q 1 -t interop/garbage -m fine || return 1
    wait "$SUB_PID" || true
    expect_msgs "$f" "MSG|interop/garbage|1|0|fine"
}

# ---- run ---------------------------------------------------------------------------

for v in 311 5; do
    V=mqttv311
    [ "$v" = 5 ] && V=5
    for q in 0 1 2; do run "qos${q}_v$v" qos "$V" "$q"; done
    run "wildcards_v$v" wildcards "$V"
    run "retained_set_and_cleared_v$v" retained "$V"
    run "will_on_abrupt_close_v$v" will_on_abrupt_close "$V"
    run "no_will_on_disconnect_v$v" no_will_on_disconnect "$V"
    run "persistent_session_queued_v$v" persistent_session "$V"
done
run shared_subscription shared_subscription
run v5_properties_paho paho properties
run request_response_paho paho request_response
run topic_alias_paho paho topic_alias
run message_expiry message_expiry
run session_expiry session_expiry
run tls tls
run tls_plain_client_refused tls_plain_client_refused
run websockets_paho paho websockets
run password_ok password_ok
run password_refused_v311 password_refused mqttv311
run password_refused_v5 password_refused 5
run acl_read_forbidden acl_read_forbidden
run acl_write_forbidden acl_write_forbidden
run garbage_client_isolated garbage_client_isolated
run persistence_across_kill9 persistence_across_kill9
run slow_consumer_isolated slow_consumer_isolated
run broker_still_serves broker_still_serves
run graceful_shutdown graceful_shutdown

if [ "$FAILED" -gt 0 ]; then
    echo "--- broker log (last 40 lines)"
    tail -n 40 "$TMP/broker.log" || true
    echo "--- auth broker log (last 20 lines)"
    tail -n 20 "$TMP/broker-auth.log" || true
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

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
# Paced (~6 MB/s) so that the reading subscriber keeps up even on a loaded
# machine, while the one that never reads still piles up past the limit.
for _ in range(n):
    flooder.publish("flood/x", b"x" * size, qos=0)
    time.sleep(0.01)
if not done.wait(30):
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

# ---- our client against a real broker ----------------------------------------------
#
# The client example (crates/mqtt-session/examples/client, mosquitto_pub /
# mosquitto_sub's options) against mosquitto (started here on free ports,
# plain and TLS) and against our broker (the open one above): QoS 0/1/2,
# retained, will, persistent sessions, 5.0 properties both ways with the
# mosquitto clients, TLS, and session resume through a proxy that cuts
# the connection in the middle of a transfer.

cargo build --release -q -p mqtt-session --example client
CLIENT="$target_dir/release/examples/client"
MQ_PORT=$(free_port)
MQ_TLS_PORT=$(free_port)
cat >"$TMP/mosquitto.conf" <<EOF
# As root, stay root: the files are in a private temporary directory.
user root
per_listener_settings false
allow_anonymous true
listener $MQ_PORT 127.0.0.1
listener $MQ_TLS_PORT 127.0.0.1
certfile $TMP/server.pem
keyfile $TMP/server-key.pem
EOF
# TLS for our client: a CA and a server certificate it signed (rustls, as
# browsers, refuses a CA certificate as a server's own, so the
# self-signed one above does not do), served by mosquitto and by one more
# instance of our broker; and a CA that signed neither (refused).
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=interop-ca \
    -keyout "$TMP/ca-key.pem" -out "$TMP/ca.pem" 2>/dev/null
openssl req "${ec[@]}" -subj /CN=localhost -keyout "$TMP/server-key.pem" \
    -out "$TMP/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "extendedKeyUsage=serverAuth" >"$TMP/server.ext"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca-key.pem" \
    -CAcreateserial -days 1 -extfile "$TMP/server.ext" -out "$TMP/server.pem" 2>/dev/null
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=other-ca \
    -keyout "$TMP/other-key.pem" -out "$TMP/other-ca.pem" 2>/dev/null
OURS_TLS_PORT=$(free_port)
timeout 600 "$BROKER" --tls-listen "127.0.0.1:$OURS_TLS_PORT" --cert "$TMP/server.pem" \
    --key "$TMP/server-key.pem" >"$TMP/broker-tls.log" 2>&1 &
PIDS+=($!)
wait_port "$OURS_TLS_PORT"
timeout 600 mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_port "$MQ_PORT"
wait_port "$MQ_TLS_PORT"

# A TCP proxy that cuts its first connections: LISTEN UPSTREAM CUT_AFTER CUTS.
# Each of the first CUTS connections is closed both ways, without a word,
# once CUT_AFTER bytes went from the client to the broker.
cat >"$TMP/cutting_proxy.py" <<'EOF'
import socket, sys, threading

listen, upstream, cut_after, cuts = (int(a) for a in sys.argv[1:5])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(16)


def pipe(a, b, limit, done):
    sent = 0
    try:
        while not done.is_set():
            data = a.recv(4096)
            if not data:
                break
            if limit is not None and sent + len(data) >= limit:
                b.sendall(data[: limit - sent])
                break
            b.sendall(data)
            sent += len(data)
    except OSError:
        pass
    done.set()
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


n = 0
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", upstream))
    n += 1
    done = threading.Event()
    limit = cut_after if n <= cuts else None
    threading.Thread(target=pipe, args=(c, u, limit, done), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c, None, done), daemon=True).start()
EOF

# csub_bg FILE ARGS...: our client's sub in the background (its pid in
# SUB_PID; ARGS must bound it with -W or -C), returns once its SUBACK
# arrived. Messages are printed as with FMT.
csub_bg() {
    local out=$1 i
    shift
    "$CLIENT" sub -d -F "$FMT" "$@" >"$out" 2>&1 &
    SUB_PID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "received SUBACK" "$out" 2>/dev/null && return 0
        if ! kill -0 "$SUB_PID" 2>/dev/null; then
            echo "client sub exited before SUBACK: $(tr '\n' ' ' <"$out")"
            return 1
        fi
        sleep 0.05
    done
    echo "no SUBACK: $(tr '\n' ' ' <"$out")"
    return 1
}

# cwait FILE: waits for the client sub of csub_bg; it must end with 0.
cwait() {
    local rc=0
    wait "$SUB_PID" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "client sub exited with $rc: $(tr '\n' ' ' <"$1" | cut -c1-300)"
        return 1
    fi
}

cpub() { timeout 20 "$CLIENT" pub -h 127.0.0.1 "$@"; }

c_qos() { # port version qos
    local p=$1 v=$2 q=$3 t="client/qos/$1/$2/$3" f="$TMP/cqos-$1-$2-$3"
    csub_bg "$f" -h 127.0.0.1 -p "$p" -V "$v" -q "$q" -t "$t" -C 1 -W 5 || return 1
    cpub -p "$p" -V "$v" -q "$q" -t "$t" -m "hello $q" || { echo "client pub failed"; return 1; }
    cwait "$f" || return 1
    expect_msgs "$f" "MSG|$t|$q|0|hello $q"
}

c_retained() { # port version
    local p=$1 v=$2 t="client/retained/$1/$2" f="$TMP/cret-$1-$2" rc=0
    cpub -p "$p" -V "$v" -q 1 -r -t "$t" -m kept || { echo "client pub failed"; return 1; }
    timeout 10 "$CLIENT" sub -h 127.0.0.1 -p "$p" -V "$v" -F "$FMT" -t "$t" -C 1 -W 3 >"$f" 2>&1 ||
        { echo "no retained message: $(tr '\n' ' ' <"$f")"; return 1; }
    expect_msgs "$f" "MSG|$t|0|1|kept" || return 1
    cpub -p "$p" -V "$v" -r -n -t "$t" || { echo "client pub -n failed"; return 1; }
    timeout 10 "$CLIENT" sub -h 127.0.0.1 -p "$p" -V "$v" -F "$FMT" -t "$t" -C 1 -W 1 >"$f" 2>&1 || rc=$?
    [ "$rc" -eq 27 ] || { echo "expected the -W exit code 27 after clearing, got $rc"; return 1; }
    expect_msgs "$f" "" || { echo "(after clearing)"; return 1; }
}

c_will() { # port version
    local p=$1 v=$2 t="client/will/$1/$2" f="$TMP/cwill-$1-$2" w="$TMP/cwiller-$1-$2" watcher wpid
    csub_bg "$f" -h 127.0.0.1 -p "$p" -V "$v" -t "$t" -C 1 -W 5 || return 1
    watcher=$SUB_PID
    csub_bg "$w" -h 127.0.0.1 -p "$p" -V "$v" -i "cwiller-$p-$v" -t "client/idle" \
        --will-topic "$t" --will-payload gone --will-qos 1 -W 20 || return 1
    wpid=$SUB_PID
    kill -9 "$wpid" # no DISCONNECT: the socket just closes
    wait "$wpid" 2>/dev/null || true
    SUB_PID=$watcher
    cwait "$f" || return 1
    expect_msgs "$f" "MSG|$t|0|0|gone"
}

c_no_will() { # port version
    local p=$1 v=$2 t="client/nowill/$1/$2" e="client/nowill/end/$1/$2" f="$TMP/cnowill-$1-$2"
    csub_bg "$f" -h 127.0.0.1 -p "$p" -V "$v" -t "$t" -t "$e" -C 1 -W 5 || return 1
    # Our pub ends with DISCONNECT 0x00: no Will.
    cpub -p "$p" -V "$v" --will-topic "$t" --will-payload wrong -t client/nowill/other -m x ||
        { echo "client pub failed"; return 1; }
    sleep 0.3
    cpub -p "$p" -V "$v" -t "$e" -m end || return 1
    cwait "$f" || return 1
    expect_msgs "$f" "MSG|$e|0|0|end"
}

c_persistent() { # port version
    local p=$1 v=$2 t="client/persist/$1/$2" f="$TMP/cpersist-$1-$2" id="cpersist-$1-$2"
    timeout 10 "$CLIENT" sub -h 127.0.0.1 -p "$p" -V "$v" -c -i "$id" -q 1 -t "$t" -E >"$f" 2>&1 ||
        { echo "first subscribe failed: $(tr '\n' ' ' <"$f")"; return 1; }
    printf 'm1\nm2\nm3\n' | cpub -p "$p" -V "$v" -q 1 -t "$t" -l || { echo "client pub failed"; return 1; }
    # Back: the queued messages arrive without subscribing again.
    timeout 10 "$CLIENT" sub -h 127.0.0.1 -p "$p" -V "$v" -c -i "$id" -q 1 \
        -t "client/persist/unrelated" -F "$FMT" -C 3 -W 5 >"$f" 2>&1 || true
    expect_msgs "$f" "MSG|$t|1|0|m1
MSG|$t|1|0|m2
MSG|$t|1|0|m3"
}

PFMT='MSG|%t|%C|%R|%D|%E|%P|%p'
PROPS=(-D publish user-property k1 v1 -D publish user-property k2 v2
    -D publish content-type text/plain -D publish response-topic reply/here
    -D publish correlation-data corr-1 -D publish message-expiry-interval 60)

c_properties_out() { # port: our pub's 5.0 properties, as mosquitto_sub prints them
    local p=$1 t="client/props/$1" f="$TMP/cprops-out-$1" got i
    stdbuf -oL mosquitto_sub -d -F "$PFMT" -h 127.0.0.1 -p "$p" -V 5 -q 1 -t "$t" -C 1 -W 5 >"$f" 2>&1 &
    SUB_PID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "received SUBACK" "$f" && break
        sleep 0.05
    done
    cpub -p "$p" -V 5 -q 1 -t "$t" -m body "${PROPS[@]}" || { echo "client pub failed"; return 1; }
    wait "$SUB_PID" || true
    # mosquitto_sub -d has the message with the format, but no newline.
    got=$(grep -o "MSG|.*|body" "$f" || true)
    [ "$got" = "MSG|$t|text/plain|reply/here|corr-1|60|k1:v1 k2:v2|body" ] ||
        { echo "got [$got]: $(tr '\n' ' ' <"$f")"; return 1; }
}

c_properties_in() { # port: mosquitto_pub's 5.0 properties, as our sub prints them
    local p=$1 t="client/props-in/$1" f="$TMP/cprops-in-$1"
    "$CLIENT" sub -d -h 127.0.0.1 -p "$p" -V 5 -q 1 -t "$t" -C 1 -W 5 -F "$PFMT" >"$f" 2>&1 &
    SUB_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q "received SUBACK" "$f" && break
        sleep 0.05
    done
    pub -p "$p" -V 5 -q 1 -t "$t" -m body "${PROPS[@]}" || return 1
    cwait "$f" || return 1
    expect_msgs "$f" "MSG|$t|text/plain|reply/here|corr-1|60|k1:v1 k2:v2|body"
}

c_tls() { # TLS port
    local p=$1 t="client/tls/$1" f="$TMP/ctls-$1"
    csub_bg "$f" -h localhost -p "$p" --cafile "$TMP/ca.pem" -q 1 -t "$t" -C 1 -W 5 || return 1
    timeout 10 "$CLIENT" pub -h localhost -p "$p" --cafile "$TMP/ca.pem" -q 1 -t "$t" -m secure ||
        { echo "client pub failed"; return 1; }
    cwait "$f" || return 1
    expect_msgs "$f" "MSG|$t|1|0|secure"
}

c_tls_untrusted() { # TLS port: a certificate not from the --cafile is refused
    local p=$1 out
    if out=$(timeout 10 "$CLIENT" pub -h localhost -p "$p" --cafile "$TMP/other-ca.pem" -t x -m y 2>&1); then
        echo "connected although the certificate is not trusted"
        return 1
    fi
    printf '%s' "$out" | grep -qi "certificate" || { echo "unexpected error: $out"; return 1; }
}

# Session resume: the connection is cut (three times) in the middle of 300
# QoS 2 messages; the client reconnects, the broker resumes the session,
# and every message arrives exactly once, in order. 3.1.1 needs -c for
# the broker to keep the session; 5.0 resumes without it (the first
# CONNECT asks for a session expiry, the reconnections for Clean Start 0).
c_resume_pub() { # port version: our pub behind the proxy
    local p=$1 v=$2 t="client/resume-pub/$1/$2" f="$TMP/cresume-pub-$1-$2" px pp c=()
    [ "$v" = 311 ] && c=(-c -i "cresume-pub-$p")
    px=$(free_port)
    python3 "$TMP/cutting_proxy.py" "$px" "$p" 1500 3 &
    pp=$!
    wait_port "$px" || { kill "$pp"; return 1; }
    csub_bg "$f" -h 127.0.0.1 -p "$p" -V "$v" -q 2 -t "$t" -C 300 -W 20 || { kill "$pp"; return 1; }
    seq 1 300 | cpub -p "$px" -V "$v" "${c[@]}" -q 2 -t "$t" -l 2>"$f.pub" ||
        { kill "$pp"; echo "client pub failed: $(tr '\n' ' ' <"$f.pub")"; return 1; }
    kill "$pp"
    cwait "$f" || return 1
    grep -q "reconnecting" "$f.pub" || { echo "the proxy did not cut the connection"; return 1; }
    local got
    got=$(msgs "$f" | cut -d'|' -f5 | tr '\n' ' ')
    [ "$got" = "$(seq 1 300 | tr '\n' ' ')" ] || { echo "not exactly once in order: [$got]"; return 1; }
}

c_resume_sub() { # port version: our sub behind the proxy
    local p=$1 v=$2 t="client/resume-sub/$1/$2" f="$TMP/cresume-sub-$1-$2" px pp c=()
    [ "$v" = 311 ] && c=(-c -i "cresume-sub-$p")
    px=$(free_port)
    python3 "$TMP/cutting_proxy.py" "$px" "$p" 600 3 &
    pp=$!
    wait_port "$px" || { kill "$pp"; return 1; }
    csub_bg "$f" -h 127.0.0.1 -p "$px" -V "$v" "${c[@]}" -q 2 -t "$t" -C 300 -W 20 ||
        { kill "$pp"; return 1; }
    seq 1 300 | cpub -p "$p" -V "$v" -q 2 -t "$t" -l || { kill "$pp"; echo "client pub failed"; return 1; }
    cwait "$f" || { kill "$pp"; return 1; }
    kill "$pp"
    grep -q "reconnecting" "$f" || { echo "the proxy did not cut the connection"; return 1; }
    local got
    got=$(msgs "$f" | cut -d'|' -f5 | tr '\n' ' ')
    [ "$got" = "$(seq 1 300 | tr '\n' ' ')" ] || { echo "not exactly once in order: [$got]"; return 1; }
}

c_bad_flags() {
    # Bad flags and files: a clear error and a non-zero exit, never a panic.
    local args out rc
    for args in "pub -t a/# -m x" "pub -t a" "pub -t a -m x -q 3" "sub -t a -V 6" \
        "pub -t a -m x -D publish content-type" "pub -t a -m x -D publish nonsense 1 -V 5" \
        "pub -t a -m x -D publish content-type t" "pub -t a -m x --cafile /nonexistent" \
        "sub -t a/#/b" "pub -t a -f /nonexistent" "nonsense"; do
        rc=0
        # shellcheck disable=SC2086 # word splitting is the point
        out=$(timeout 10 "$CLIENT" $args -p 1 2>&1) || rc=$?
        if [ "$rc" -eq 0 ] || printf '%s' "$out" | grep -q "panicked"; then
            echo "'$args': exit $rc: $out"
            return 1
        fi
    done
    # Nothing listening: an error, not a hang.
    rc=0
    out=$(timeout 10 "$CLIENT" pub -h 127.0.0.1 -p "$(free_port)" -t a -m x 2>&1) || rc=$?
    if [ "$rc" -ne 1 ] || ! printf '%s' "$out" | grep -q "cannot connect"; then
        echo "no broker: exit $rc: $out"
        return 1
    fi
}

for b in mosquitto ours; do
    P=$MQ_PORT
    [ "$b" = ours ] && P=$PORT
    for v in 311 5; do
        for q in 0 1 2; do run "client_${b}_qos${q}_v$v" c_qos "$P" "$v" "$q"; done
        run "client_${b}_retained_v$v" c_retained "$P" "$v"
        run "client_${b}_will_on_kill_v$v" c_will "$P" "$v"
        run "client_${b}_no_will_on_disconnect_v$v" c_no_will "$P" "$v"
        run "client_${b}_persistent_session_v$v" c_persistent "$P" "$v"
        run "client_${b}_resume_pub_qos2_v$v" c_resume_pub "$P" "$v"
        run "client_${b}_resume_sub_qos2_v$v" c_resume_sub "$P" "$v"
    done
    run "client_${b}_v5_properties_out" c_properties_out "$P"
    run "client_${b}_v5_properties_in" c_properties_in "$P"
done
run client_mosquitto_tls c_tls "$MQ_TLS_PORT"
run client_ours_tls c_tls "$OURS_TLS_PORT"
run client_tls_untrusted_refused c_tls_untrusted "$MQ_TLS_PORT"
run client_bad_flags c_bad_flags
if [ "$FAILED" -gt 0 ]; then
    echo "--- mosquitto log (last 20 lines)"
    tail -n 20 "$TMP/mosquitto.log" || true
fi

if [ "$FAILED" -gt 0 ]; then
    echo "--- broker log (last 40 lines)"
    tail -n 40 "$TMP/broker.log" || true
    echo "--- auth broker log (last 20 lines)"
    tail -n 20 "$TMP/broker-auth.log" || true
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

#!/usr/bin/env bash
# Performance of the broker example (crates/mqtt-broker/examples/broker)
# against mosquitto, measured in the same run with the same load generator
# (crates/mqtt-session/examples/loadgen, built on our client state machine).
#
#   bash scripts/bench-broker.sh            # 3 repetitions, 10 s each (about 10 minutes)
#   bash scripts/bench-broker.sh --quick    # 1 repetition, 2 s each, 2,000 idle connections
#   bash scripts/bench-broker.sh --help
#   python3 scripts/plot-bench.py           # docs/bench-broker.svg from the results
#
# Installs what is missing (Debian: mosquitto, python3), builds both
# examples in release, raises `ulimit -n`, then for every repetition, every
# scenario and both brokers: starts a fresh broker on a free 127.0.0.1 port,
# reads its utime+stime from /proc/PID/stat, runs the scenario, reads them
# again (CPU per message = delta / messages delivered), and stops it. The
# idle scenario reads VmRSS before and with N idle connections (RSS per
# connection = delta / N). Keeps the medians of the repetitions (loss and
# duplicates: the worst repetition).
#
# Writes target/bench-broker/runs.jsonl (every run), results.json and
# results.csv (the medians), and prints a Markdown table.
# `python3 scripts/plot-bench.py` turns results.json into docs/bench-broker.svg.
#
# Both brokers get the same settings: plain TCP on 127.0.0.1, anonymous,
# no persistence, no logging, TCP_NODELAY, no $SYS, queues large enough
# for every scenario (100,000 messages per client, no byte bound to hit),
# no in-flight limit of their own towards subscribers (the subscribers'
# Receive Maximum, 65,535, applies), connection limit above the idle
# scenario's. The load generator uses MQTT 5 (--protocol 311 for 3.1.1).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=3
DURATION=10
IDLE_N=10000
SCENARIOS="fan-in fan-out qos1 qos2 latency idle"
PROTOCOL=5
OUT=target/bench-broker
ARGS="$*"

usage() {
    cat <<'EOF'
usage: bash scripts/bench-broker.sh [--quick] [--reps N] [--duration SECONDS]
                                    [--idle-connections N] [--scenarios "LIST"]
                                    [--protocol 5|311]
  --quick               1 repetition, 2 s per scenario, 2,000 idle connections
  --reps N              repetitions per scenario and broker (default 3; medians kept)
  --duration SECONDS    publishing time per run (default 10)
  --idle-connections N  connections of the idle scenario (default 10000)
  --scenarios "LIST"    among: fan-in fan-out qos1 qos2 latency idle (default: all)
  --protocol 5|311      MQTT version of the load generator (default 5)
  --out DIR             where the results go (default target/bench-broker)
environment: BROKER_BIN=PATH measures that broker binary instead of the
  freshly built example (same options), to compare a modified broker;
  BROKER_ARGS="..." adds options to our broker's command line (e.g.
  "--threads 1").
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) REPS=1 DURATION=2 IDLE_N=2000 ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift ;;
    --idle-connections) IDLE_N=${2:?--idle-connections needs a number}; shift ;;
    --scenarios) SCENARIOS=${2:?--scenarios needs a list}; shift ;;
    --protocol) PROTOCOL=${2:?--protocol needs 5 or 311}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for v in "$REPS" "$DURATION" "$IDLE_N"; do
    case "$v" in '' | *[!0-9]*) echo "not a positive integer: $v" >&2; exit 2 ;; esac
    [ "$v" -gt 0 ] || { echo "must be above 0: $v" >&2; exit 2; }
done
for s in $SCENARIOS; do
    case "$s" in fan-in | fan-out | qos1 | qos2 | latency | idle) ;;
    *) echo "unknown scenario: $s" >&2; exit 2 ;;
    esac
done
case "$PROTOCOL" in 5 | 311) ;; *) echo "--protocol is 5 or 311" >&2; exit 2 ;; esac

# ---- what it needs ----------------------------------------------------------

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
# The Debian package starts a mosquitto service on 1883; ours use their own ports.

echo "building the broker and the load generator (release)" >&2
cargo build --release -q -p mqtt-broker --example broker
cargo build --release -q -p mqtt-session --example loadgen
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BROKER=${BROKER_BIN:-"$target_dir/release/examples/broker"}
[ -x "$BROKER" ] || { echo "not an executable: $BROKER" >&2; exit 2; }
LOADGEN="$target_dir/release/examples/loadgen"

# Each of the load generator and the broker holds one descriptor per idle
# connection.
want=$((IDLE_N + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null || true
    hard=$(ulimit -Hn)
fi
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then
    ulimit -Sn "$want"
else
    ulimit -Sn "$hard"
    IDLE_N=$((hard - 1024))
    echo "open files limited to $hard: $IDLE_N idle connections" >&2
fi

mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: >"$RUNS"
TMP=$(mktemp -d /tmp/mqtt-bench.XXXXXX)
# The processes running now (a broker, an idle load generator); cleared
# once they are reaped, so that no recycled pid is ever signalled.
BROKER_PID=
LG_PID=
cleanup() {
    local p
    for p in $LG_PID $BROKER_PID; do kill "$p" 2>/dev/null || true; done
    for p in $LG_PID $BROKER_PID; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port
    local i
    for ((i = 0; i < 100; i++)); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "no broker on port $1" >&2
    return 1
}

# utime + stime of a process, in clock ticks (after the ')' that ends the
# command name: field 14 and 15 of the line are the 12th and 13th).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

start_broker() { # kind port
    local kind=$1 port=$2
    case "$kind" in
    ours)
        "$BROKER" --listen "127.0.0.1:$port" --quiet \
            --max-queued-messages 100000 --max-queued-bytes 1073741824 \
            --max-write-buffer 268435456 --max-connections $((IDLE_N + 1000)) \
            ${BROKER_ARGS:-} >"$TMP/broker.log" 2>&1 &
        ;;
    mosquitto)
        cat >"$TMP/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest none
sys_interval 0
set_tcp_nodelay true
max_inflight_messages 0
max_queued_messages 100000
max_queued_bytes 0
max_connections -1
EOF
        "$MOSQUITTO" -c "$TMP/mosquitto.conf" >"$TMP/broker.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
    wait_port "$port"
}

stop_broker() {
    local i
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
}

# One run: a fresh broker, the scenario, one JSON line into $RUNS.
run_one() { # kind scenario rep
    local kind=$1 scenario=$2 rep=$3 port c0 c1 line
    port=$(free_port)
    start_broker "$kind" "$port"
    if [ "$scenario" = idle ]; then
        local r0 r1 i ready=
        sleep 0.5 # settled
        r0=$(rss_kb "$BROKER_PID")
        c0=$(cpu_ticks "$BROKER_PID")
        # Emptied here: the background job's redirection happens later,
        # and the previous run's ready line must not be taken for this one's.
        : >"$TMP/idle.out"
        "$LOADGEN" idle -p "$port" -V "$PROTOCOL" --connections "$IDLE_N" --hold 300 \
            >"$TMP/idle.out" 2>"$TMP/loadgen.err" &
        LG_PID=$!
        for ((i = 0; i < 1200; i++)); do
            if grep -q '"ready"' "$TMP/idle.out" 2>/dev/null; then ready=1; break; fi
            kill -0 "$LG_PID" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1 # let the broker finish what the last CONNACKs started
        r1=$(rss_kb "$BROKER_PID")
        c1=$(cpu_ticks "$BROKER_PID")
        kill -TERM "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
        LG_PID=
        stop_broker
        if [ -z "$ready" ]; then
            echo "idle on $kind: no ready line ($(head -c 300 "$TMP/loadgen.err"))" >&2
            line=$(printf '{"scenario":"idle","error":"no ready line"}')
        else
            line=$(tail -n 1 "$TMP/idle.out")
        fi
        python3 - "$kind" "$rep" "$r0" "$r1" "$c0" "$c1" "$TICKS" "$line" "$TMP/loadgen.err" >>"$RUNS" <<'EOF'
import json, sys
kind, rep, r0, r1, c0, c1, ticks, line, err = sys.argv[1:]
try:
    d = json.loads(line)
except ValueError:
    d = {"scenario": "idle", "error": "no result line: " + open(err).read()[-300:]}
n = d.get("connected") or 0
d.update(broker=kind, rep=int(rep), rss_before_kb=int(r0), rss_idle_kb=int(r1),
         broker_cpu_s=(int(c1) - int(c0)) / int(ticks),
         rss_per_conn_b=round((int(r1) - int(r0)) * 1024 / n, 1) if n else None)
print(json.dumps(d))
EOF
    else
        c0=$(cpu_ticks "$BROKER_PID")
        if line=$(timeout $((DURATION + 90)) "$LOADGEN" "$scenario" -p "$port" -V "$PROTOCOL" \
            -d "$DURATION" 2>"$TMP/loadgen.err"); then
            :
        else
            echo "$scenario on $kind failed: $(head -c 300 "$TMP/loadgen.err")" >&2
            line=$(printf '{"scenario":"%s","error":"load generator failed"}' "$scenario")
        fi
        c1=$(cpu_ticks "$BROKER_PID")
        stop_broker
        python3 - "$kind" "$scenario" "$rep" "$c0" "$c1" "$TICKS" "$line" "$TMP/loadgen.err" >>"$RUNS" <<'EOF'
import json, sys
kind, scenario, rep, c0, c1, ticks, line, err = sys.argv[1:]
try:
    d = json.loads(line)
except ValueError:
    d = {"scenario": scenario, "error": "no result line: " + open(err).read()[-300:]}
cpu = (int(c1) - int(c0)) / int(ticks)
got = d.get("received") or 0
d.update(broker=kind, rep=int(rep), broker_cpu_s=cpu,
         cpu_us_per_msg=round(cpu * 1e6 / got, 3) if got else None)
print(json.dumps(d))
EOF
    fi
    tail -n 1 "$RUNS" | python3 -c '
import json, sys
d = json.load(sys.stdin)
keys = ["broker", "scenario", "rep", "msgs_per_s", "cpu_us_per_msg", "lost", "duplicates",
        "p50_us", "p99_us", "loadgen_busy", "rss_per_conn_b", "error", "errors"]
print("  " + " ".join(f"{k}={d[k]}" for k in keys if d.get(k) not in (None, [])), file=sys.stderr)'
}

MOSQ_VERSION=$("$MOSQUITTO" -h 2>&1 | head -n 1 || true)
echo "broker: $BROKER" >&2
echo "mosquitto: $MOSQ_VERSION" >&2
echo "$REPS repetition(s), ${DURATION} s per scenario, $IDLE_N idle connections, MQTT $PROTOCOL" >&2
START=$(date +%s)
for ((rep = 1; rep <= REPS; rep++)); do
    for scenario in $SCENARIOS; do
        # Alternate which broker goes first: background load drifts.
        if ((rep % 2)); then order="ours mosquitto"; else order="mosquitto ours"; fi
        for kind in $order; do
            run_one "$kind" "$scenario" "$rep"
        done
    done
done
echo "measured in $(($(date +%s) - START)) s" >&2

# ---- medians, results.json, results.csv, the table ---------------------------

python3 - "$RUNS" "$OUT" "$MOSQ_VERSION" "$ARGS" "$REPS" "$DURATION" "$IDLE_N" "$PROTOCOL" <<'EOF'
import json, os, platform, statistics, sys
runs_path, out, mosq_version, args, reps, duration, idle_n, protocol = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]

def cpu_model():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def worst(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None

order = ["fan-in", "fan-out", "qos1", "qos2", "latency", "idle"]
brokers = ["ours", "mosquitto"]
metrics = {  # name: (aggregate, direction: True when higher is better)
    "msgs_per_s": (median, True), "cpu_us_per_msg": (median, False),
    "lost": (worst, False), "duplicates": (worst, False),
    "p50_us": (median, False), "p99_us": (median, False),
    "loadgen_busy": (median, None), "rss_per_conn_b": (median, False),
}
results = {}
for s in order:
    per = {}
    for b in brokers:
        rs = [r for r in runs if r.get("scenario") == s and r.get("broker") == b]
        if not rs:
            continue
        agg = {m: f([r.get(m) for r in rs]) for m, (f, _) in metrics.items()}
        agg["runs"] = len(rs)
        agg["errors"] = sorted({e for r in rs for e in (r.get("errors") or []) + ([r["error"]] if r.get("error") else [])})
        per[b] = agg
    if per:
        ratio = {}
        if "ours" in per and "mosquitto" in per:
            for m in metrics:
                a, b = per["ours"].get(m), per["mosquitto"].get(m)
                ratio[m] = round(a / b, 3) if a is not None and b not in (None, 0) else None
        per["ratio"] = ratio
        results[s] = per

doc = {
    "machine": {
        "nproc": os.cpu_count(), "cpu": cpu_model(),
        "kernel": platform.release(), "mosquitto": mosq_version,
    },
    "command": "bash scripts/bench-broker.sh " + args,
    "repetitions": int(reps), "duration_s": int(duration), "idle_connections": int(idle_n),
    "protocol": protocol,
    "aggregation": "median of the repetitions; lost and duplicates: the worst repetition",
    "scenarios": results,
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(doc, f, indent=2)
with open(os.path.join(out, "results.csv"), "w") as f:
    f.write("scenario,broker," + ",".join(metrics) + "\n")
    for s, per in results.items():
        for b in brokers + ["ratio"]:
            if b in per:
                f.write(",".join([s, b] + ["" if per[b].get(m) is None else str(per[b].get(m)) for m in metrics]) + "\n")

def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)

def get(s, b, m):
    return results.get(s, {}).get(b, {}).get(m)

print(f"Machine: {doc['machine']['nproc']} cores, {doc['machine']['cpu']}, Linux {doc['machine']['kernel']}, {mosq_version}")
print(f"Command: `{doc['command'].strip()}`; {reps} repetition(s) of {duration} s, MQTT {protocol}; {doc['aggregation']}.")
print()
print("| scenario | msgs/s ours | msgs/s mosquitto | ours/mosq | CPU µs/msg ours | CPU µs/msg mosquitto | ours/mosq | lost ours / mosq | dup ours / mosq | p50 µs ours / mosq | p99 µs ours / mosq | loadgen busy ours / mosq |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in order:
    if s == "idle" or s not in results:
        continue
    r = results[s]["ratio"]
    print("| " + " | ".join([
        s, fmt(get(s, "ours", "msgs_per_s")), fmt(get(s, "mosquitto", "msgs_per_s")), fmt(r.get("msgs_per_s")),
        fmt(get(s, "ours", "cpu_us_per_msg"), 3), fmt(get(s, "mosquitto", "cpu_us_per_msg"), 3), fmt(r.get("cpu_us_per_msg"), 3),
        f"{fmt(get(s, 'ours', 'lost'))} / {fmt(get(s, 'mosquitto', 'lost'))}",
        f"{fmt(get(s, 'ours', 'duplicates'))} / {fmt(get(s, 'mosquitto', 'duplicates'))}",
        f"{fmt(get(s, 'ours', 'p50_us'), 0)} / {fmt(get(s, 'mosquitto', 'p50_us'), 0)}",
        f"{fmt(get(s, 'ours', 'p99_us'), 0)} / {fmt(get(s, 'mosquitto', 'p99_us'), 0)}",
        f"{fmt(get(s, 'ours', 'loadgen_busy'))} / {fmt(get(s, 'mosquitto', 'loadgen_busy'))}",
    ]) + " |")
if "idle" in results:
    r = results["idle"]["ratio"]
    print()
    print(f"| idle ({idle_n} connections) | ours | mosquitto | ours/mosq |")
    print("|---|---:|---:|---:|")
    print(f"| RSS per connection (bytes) | {fmt(get('idle', 'ours', 'rss_per_conn_b'), 0)} | {fmt(get('idle', 'mosquitto', 'rss_per_conn_b'), 0)} | {fmt(r.get('rss_per_conn_b'))} |")
errs = [(s, b, e) for s, per in results.items() for b in brokers if b in per for e in per[b]["errors"]]
for s, b, e in errs:
    print(f"\nerror in {s} on {b}: {e}")
print(f"\nwritten: {out}/results.json, {out}/results.csv, {out}/runs.jsonl")
EOF

#!/usr/bin/env bash
# Cluster mode (issue 16) measurements: cross-node latency, commit throughput, catch-up after a
# SIGSTOP outage and at boot. Everything on loopback: one nats-server (JetStream, replicas 1,
# file storage), framecast nodes a and b (1 shard, 60 Hz each), framecast-load; all share the
# machine's cores (no pinning). Every build and every measured run takes
# /tmp/framecast-heavy.lock (shared with others), each for well under 10 minutes.
#
# usage: benches/cluster/run.sh [build] [latency] [throughput] [catchup] [boot]   (default: all)
# env:   FC, LOAD [target/release/framecast, framecast-load]
#        NATS_PORT [24222] A_PORT [28081] B_PORT [28082] (must be free: checked)
#        OUT [/tmp/framecast-cluster-bench]  NATS [/usr/sbin/nats-server]  DURATION [10]
#        HISTORY [100] (history_size of every namespace; the events stream keeps this many
#        batches per channel)  RATES_1CH, RATES_100CH, RATES_1000CH (throughput steps)
# Results: $OUT/results.tsv (one line per run: label, framecast-load JSON, /metrics extract)
# and $OUT/*.log.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/framecast-cluster-bench}
NATS=${NATS:-/usr/sbin/nats-server}
LOCK=/tmp/framecast-heavy.lock
FC=${FC:-$ROOT/target/release/framecast}
LOAD=${LOAD:-$ROOT/target/release/framecast-load}
DURATION=${DURATION:-10}
HISTORY=${HISTORY:-100}
NATS_PORT=${NATS_PORT:-24222} A_PORT=${A_PORT:-28081} B_PORT=${B_PORT:-28082}
A_WS=ws://127.0.0.1:$A_PORT/ws B_WS=ws://127.0.0.1:$B_PORT/ws
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
PIDS=()

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

# fail if something already listens on 127.0.0.1:PORT (another engineer's server)
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "port $1 is already in use: set NATS_PORT / A_PORT / B_PORT" >&2
    exit 1
  fi
}

start_nats() {
  port_free $NATS_PORT
  rm -rf "$OUT/nats-store"
  "$NATS" -js -a 127.0.0.1 -p $NATS_PORT -sd "$OUT/nats-store" 2>"$OUT/nats.log" &
  NATS_PID=$!
  PIDS+=("$NATS_PID")
  for _ in $(seq 100); do
    kill -0 "$NATS_PID" 2>/dev/null || { echo "nats-server exited" >&2; exit 1; }
    (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nats-server did not start" >&2
  exit 1
}

# write_config NAME PORT CLUSTER(yes|no)
write_config() {
  local cfg=$OUT/$1.toml
  cat >"$cfg" <<EOF
listen = "127.0.0.1:$2"
shards = 1
tick_hz = 60
[namespaces.chat]
history_size = $HISTORY
[namespaces.default]
history_size = $HISTORY
EOF
  if [ "$3" = yes ]; then
    cat >>"$cfg" <<EOF
[cluster]
urls = ["nats://127.0.0.1:$NATS_PORT"]
node = "$1"
stream = "bench"
EOF
  fi
  echo "$cfg"
}

# start_node NAME PORT CLUSTER(yes|no) -> sets <NAME>_PID
start_node() {
  local cfg
  port_free "$2"
  cfg=$(write_config "$1" "$2" "$3")
  "$FC" --config "$cfg" >>"$OUT/node-$1.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  eval "${1}_PID=$pid"
  wait_ready "$2" 60 >/dev/null || { echo "node $1 not ready" >&2; exit 1; }
  kill -0 "$pid" 2>/dev/null || { echo "node $1 exited" >&2; exit 1; }
}

# wait_ready PORT TIMEOUT_S: prints seconds until GET /readyz = 200; fails on timeout
wait_ready() {
  local t0 now
  t0=$(date +%s.%N)
  while :; do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; then
      now=$(date +%s.%N)
      echo "$now - $t0" | bc
      return 0
    fi
    now=$(date +%s.%N)
    if [ "$(echo "$now - $t0 > $2" | bc)" = 1 ]; then return 1; fi
    sleep 0.05
  done
}

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
trap stop_all EXIT

# cluster metrics of the node on PORT, as one line
metrics() {
  curl -s "http://127.0.0.1:$1/metrics" | grep -E '^framecast_cluster_(commits_total|commit_retries_total|unavailable_total|replayed_events_total|lag_events|commit_seconds_(count|sum)) ' | tr '\n' ' '
  echo
}
# the commit latency histogram of the node on PORT
histogram() {
  curl -s "http://127.0.0.1:$1/metrics" | grep -E '^framecast_cluster_commit_seconds_bucket' | tr '\n' ' '
  echo
}
cstatus() { curl -s "http://127.0.0.1:$1/api/v1/status" | jq -c .cluster; }

# busy % of all cores together (0-100) over one second
busy_1s() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)
  echo "$a $b" | awk '{bu=$3-$1; id=$4-$2; printf "%d", (bu+id) ? 100*bu/(bu+id) : 0}'
}
# waits (up to 60 s, holding the lock) until the machine is nearly idle: other work that does
# not take the lock (a spinning core) would be measured with ours
wait_quiet() {
  local i b
  for i in $(seq 60); do
    b=$(busy_1s)
    [ "$b" -le 15 ] && return 0
    [ $((i % 20)) = 1 ] && log "machine busy ($b % of all cores) without us: waiting"
  done
  log "machine still busy ($b % of all cores): measuring anyway"
}

# measure LABEL METRICS_PORT -- framecast-load args...
measure() {
  local label=$1 mport=$2
  shift 3
  local before after
  [ "$mport" != - ] && before=$(metrics "$mport")
  exec 9>>"$LOCK"
  flock 9
  wait_quiet
  log "run $label: framecast-load $*"
  "$LOAD" --quiet --json --label "$label" --payload-kind positions \
    --warmup 2 --duration "$DURATION" "$@" >"$OUT/$label.log" 2>&1
  flock -u 9
  exec 9>&-
  local json
  json=$(grep '^{' "$OUT/$label.log" | tail -n 1)
  [ "$mport" != - ] && after=$(metrics "$mport")
  printf '%s\t%s\t%s\t%s\n' "$label" "${json:-FAILED}" "${before:-}" "${after:-}" >>"$RESULTS"
  if [ "$mport" != - ]; then
    printf '%s\t%s\n' "$label" "$(histogram "$mport")" >>"$OUT/histograms.tsv"
    printf '%s\t%s\n' "$label" "$(cstatus "$mport")" >>"$OUT/status.tsv"
    sleep 5
    printf '%s+5s\t%s\n' "$label" "$(cstatus "$mport")" >>"$OUT/status.tsv"
  fi
  echo "$json" | jq -r --arg l "$label" '"\($l): pub/s \(.published_per_second|floor) ratio \(.delivery_ratio) p50 \(.latency_ms.p50) p99 \(.latency_ms.p99) cpu \(.cpu_busy_percent) err \(.errors)/\(.disconnects)"' >&2
}

# 1. publish→receive latency, 1000 subscribers on 1 channel
latency() {
  local r
  log "latency (a): single node, no [cluster]"
  start_node a $A_PORT no
  for r in 50 200 1000; do
    measure "lat-single-$r" - -- --url "$A_WS" --subs 1000 --rate $r --server-pid "$a_PID"
  done
  stop_all
  log "latency (b)/(c): 2-node cluster"
  start_nats
  start_node a $A_PORT yes
  start_node b $B_PORT yes
  for r in 50 200 1000; do
    measure "lat-cross-$r" $A_PORT -- --url "$B_WS" --publish-url "$A_WS" --subs 1000 --rate $r --server-pid "$b_PID"
    measure "lat-same-$r" $A_PORT -- --url "$A_WS" --subs 1000 --rate $r --server-pid "$a_PID"
  done
  # HTTP publishing across nodes: one keep-alive connection, each POST answered after its commit
  for r in 50 200; do
    measure "lat-cross-http-$r" $A_PORT -- --url "$B_WS" --publish-url "$A_WS" --publish http --subs 1000 --rate $r --server-pid "$b_PID"
  done
  stop_all
}

# 2. commit throughput: subscribers on b, publisher on a
throughput() {
  local r
  start_nats
  start_node a $A_PORT yes
  start_node b $B_PORT yes
  for r in ${RATES_1CH:-10000 40000 80000 160000}; do
    measure "tp-1ch-$r" $A_PORT -- --url "$B_WS" --publish-url "$A_WS" --subs 10 --channels 1 --rate "$r" --server-pid "$b_PID"
  done
  for r in ${RATES_100CH:-12000 24000 48000 96000}; do
    measure "tp-100ch-$r" $A_PORT -- --url "$B_WS" --publish-url "$A_WS" --subs 1000 --channels 100 --rate "$r" --server-pid "$b_PID"
  done
  for r in ${RATES_1000CH:-3000 6000 9000}; do
    measure "tp-1000ch-$r" $A_PORT -- --url "$B_WS" --publish-url "$A_WS" --subs 10000 --channels 1000 --rate "$r" --server-pid "$b_PID" --src-ips 4
  done
  stop_all
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# 3. a 60 s SIGSTOP of node b while a publishes 500/s on 10 channels (subscribers on b), then
# SIGCONT: time to /readyz 200 and to cluster.lag 0, b's CPU meanwhile, replayed events.
catchup_locked() {
  wait_quiet
  start_nats
  start_node a $A_PORT yes
  start_node b $B_PORT yes
  "$LOAD" --quiet --json --label catchup --payload-kind positions --warmup 2 --duration 110 \
    --url "$B_WS" --publish-url "$A_WS" --subs 100 --channels 10 --rate 500 \
    --server-pid "$b_PID" >"$OUT/catchup-load.log" 2>&1 &
  local load=$!
  sleep 15
  log "catchup: b before stop: $(cstatus $B_PORT)"
  kill -STOP "$b_PID"
  log "catchup: SIGSTOP b (pid $b_PID)"
  sleep 60
  log "catchup: a after 60 s: $(cstatus $A_PORT)"
  local hz c0 t0 ready_s="" lag0_s="" both_s="" st now code lag c1=""
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks "$b_PID")
  t0=$(date +%s.%N)
  kill -CONT "$b_PID"
  log "catchup: SIGCONT b (CPU ticks at SIGCONT: $c0, $hz per second)"
  : >"$OUT/catchup-poll.log"
  while :; do
    now=$(date +%s.%N)
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$B_PORT/readyz")
    st=$(cstatus $B_PORT)
    lag=$(echo "$st" | jq -r .lag)
    echo "$(echo "$now - $t0" | bc) readyz=$code $st cpu_ticks=$(cpu_ticks "$b_PID")" >>"$OUT/catchup-poll.log"
    [ -z "$ready_s" ] && [ "$code" = 200 ] && ready_s=$(echo "$now - $t0" | bc)
    [ -z "$lag0_s" ] && [ "$lag" = 0 ] && lag0_s=$(echo "$now - $t0" | bc)
    # done: ready and lag 0 in the same sample (lag can read 0 for a moment before that)
    if [ "$code" = 200 ] && [ "$lag" = 0 ]; then
      both_s=$(echo "$now - $t0" | bc)
      c1=$(cpu_ticks "$b_PID")
      break
    fi
    if [ "$(echo "$now - $t0 > 120" | bc)" = 1 ]; then log "catchup: b did not catch up in 120 s"; break; fi
    sleep 0.1
  done
  local cpu_s
  cpu_s=$(echo "scale=2; (${c1:-$(cpu_ticks "$b_PID")} - $c0) / $hz" | bc)
  log "catchup: readyz first 200 after ${ready_s:-never} s, lag first 0 after ${lag0_s:-never} s, ready with lag 0 after ${both_s:-never} s, b CPU ${cpu_s} s in that time"
  log "catchup: b after: $(cstatus $B_PORT)"
  log "catchup: a after: $(cstatus $A_PORT)"
  printf 'catchup\tready_s=%s\tlag0_s=%s\tready_lag0_s=%s\tb_cpu_s=%s\tb=%s\ta=%s\n' "${ready_s:-never}" "${lag0_s:-never}" \
    "${both_s:-never}" "$cpu_s" "$(cstatus $B_PORT)" "$(cstatus $A_PORT)" >>"$RESULTS"
  wait "$load"
  grep '^{' "$OUT/catchup-load.log" | jq -c '{delivery_ratio, published_per_second, delivered_per_second, latency_ms, errors, disconnects, other_frames}' | tee -a "$OUT/run.log" >&2
  stop_all
}

# 3b. boot catch-up: b stopped (SIGTERM), 30k events published via a (10 channels), b started
boot_locked() {
  wait_quiet
  start_nats
  start_node a $A_PORT yes
  start_node b $B_PORT yes
  kill "$b_PID"
  wait "$b_PID" 2>/dev/null
  log "boot: b stopped; publishing 30000 events via a"
  "$LOAD" --quiet --json --label boot-publish --payload-kind positions --warmup 0 --duration 10 \
    --settle-ms 0 --url "$A_WS" --subs 10 --channels 10 --rate 3000 >"$OUT/boot-publish.log" 2>&1
  sleep 1
  log "boot: a: $(cstatus $A_PORT)"
  local cfg t0 ready_s
  cfg=$OUT/b.toml
  port_free $B_PORT
  t0=$(date +%s.%N)
  "$FC" --config "$cfg" >>"$OUT/node-b.log" 2>&1 &
  b_PID=$!
  PIDS+=("$b_PID")
  ready_s=$(wait_ready $B_PORT 120) || ready_s=never
  log "boot (history $HISTORY): b /readyz 200 $ready_s s after start; b: $(cstatus $B_PORT)"
  printf 'boot-h%s\tready_s=%s\tb_cpu_s=%s\tb=%s\ta=%s\n' "$HISTORY" "$ready_s" \
    "$(echo "scale=2; $(cpu_ticks "$b_PID") / $(getconf CLK_TCK)" | bc)" "$(cstatus $B_PORT)" "$(cstatus $A_PORT)" >>"$RESULTS"
  stop_all
}

build() {
  log "build (commit $(git -C "$ROOT" rev-parse --short HEAD))"
  flock "$LOCK" cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin framecast --bin framecast-load
}

case "${1:-}" in
  _catchup) catchup_locked; exit ;;
  _boot) boot_locked; exit ;;
esac
[ $# -eq 0 ] && set -- build latency throughput catchup boot
for step in "$@"; do
  case $step in
    build) build ;;
    latency) latency ;;
    throughput) throughput ;;
    # one lock for the whole outage experiment (about 3 minutes)
    catchup) flock "$LOCK" "$0" _catchup ;;
    boot) flock "$LOCK" "$0" _boot ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# Side-by-side WebSocket broadcast benchmark: identical workloads against the peer servers in
# benches/peers/servers/ and any server given on the command line, one fresh server process per
# step pinned to SERVER_CPU, framecast-load pinned to LOADGEN_CPU, one Markdown table at the end.
# Ported from the peers kit's compare.sh (same workloads, same knobs), driving framecast-load
# instead of the kit's wsload.
#
# usage: benches/peers/compare.sh [--only a,b] [--no-peers] [--workloads "W1 W2"]
#          [--server-env NAME=VALUE]... [[--name NAME] [--load-args "FLAGS"] 'COMMAND {PORT}']...
#
# Peers must be set up first (benches/peers/setup.sh). A command given on the command line must
# stay in the foreground (it is exec'd, so its PID is what is sampled), listen on
# 127.0.0.1:{PORT} ($PORT is exported too) and be built already. --load-args are framecast-load
# flags for that server ({PORT} substituted), appended last so they override the defaults; a
# peer's are in servers/<name>/load.args.
#
# Environment knobs (defaults in brackets):
#   SERVERS ["uws-js node-ws go-gorilla py-websockets rust-tokio-tungstenite"]  WORKLOADS ["W1 W2 W3"]
#   W1_SUBS [1000] W1_RATES ["50 200 1000 3000"] W1_PAYLOAD [64] W1_DURATION [10] W1_WARMUP [2]
#   W2_SUBS [5000] W2_BURSTS ["2 10"] (messages per tick) W2_TICK_MS [16] W2_PAYLOAD [64] W2_DURATION [10] W2_WARMUP [2]
#   W3_SUBS [19000] W3_SRC_IPS [4] W3_DURATION [5] W3_SETTLE_MS [2000]
#   SETTLE_MS [1000] CONNECT_CONCURRENCY [200] SERVER_CPU [0] LOADGEN_CPU [1] BASE_PORT [9400]
#   STARTUP_TIMEOUT [30] LOAD_THREADS [auto: cores in its affinity mask, 1 when pinned]
#   QUIET_PCT [15] QUIET_WAIT [180]: before each step wait (up to QUIET_WAIT s) until the machine's
#   total CPU busy over 1 s is below QUIET_PCT % of one core (other jobs on the box skew results)
#   OUT_DIR [${TMPDIR:-/tmp}/framecast-peers-DATE]  LOAD [target/release/framecast-load]
#   LOAD_ARGS [""]: framecast-load flags for every server and step (shell-quoted, {PORT}
#   substituted), before the per-server ones, e.g. "--payload-kind positions"
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOAD=${LOAD:-$ROOT/target/release/framecast-load}
SERVERS=${SERVERS-"uws-js node-ws go-gorilla py-websockets rust-tokio-tungstenite"}
WORKLOADS=${WORKLOADS:-"W1 W2 W3"}
W1_SUBS=${W1_SUBS:-1000}
W1_RATES=${W1_RATES:-"50 200 1000 3000"}
W1_PAYLOAD=${W1_PAYLOAD:-64}
W1_DURATION=${W1_DURATION:-10}
W1_WARMUP=${W1_WARMUP:-2}
W2_SUBS=${W2_SUBS:-5000}
W2_BURSTS=${W2_BURSTS:-"2 10"}
W2_TICK_MS=${W2_TICK_MS:-16}
W2_PAYLOAD=${W2_PAYLOAD:-64}
W2_DURATION=${W2_DURATION:-10}
W2_WARMUP=${W2_WARMUP:-2}
W3_SUBS=${W3_SUBS:-19000}
W3_SRC_IPS=${W3_SRC_IPS:-4}
W3_DURATION=${W3_DURATION:-5}
W3_SETTLE_MS=${W3_SETTLE_MS:-2000}
SETTLE_MS=${SETTLE_MS:-1000}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-200}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
BASE_PORT=${BASE_PORT:-9400}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-30}
LOAD_THREADS=${LOAD_THREADS:-}
OUT_DIR=${OUT_DIR:-${TMPDIR:-/tmp}/framecast-peers-$(date +%Y%m%d-%H%M%S)}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-180}
LOAD_ARGS=${LOAD_ARGS:-}

usage() { sed -n '2,/^set -uo/p' "$0" | sed 's/^# \{0,1\}//; /^set -uo/d'; }

ONLY=""
SERVER_ENV=()
EXTRA_NAMES=()
EXTRA_CMDS=()
EXTRA_ARGS=()
next_name=""
next_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --no-peers) SERVERS=""; shift ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --server-env)
      [[ "$2" == [A-Za-z_]*=* ]] || { echo "compare.sh: --server-env needs NAME=VALUE, got '$2'" >&2; exit 2; }
      SERVER_ENV+=("$2"); shift 2 ;;
    --name) next_name=$2; shift 2 ;;
    --load-args) next_args=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *)
      n=${#EXTRA_CMDS[@]}
      if [ -z "$next_name" ]; then
        if [ "$n" -eq 0 ]; then next_name=new; else next_name=new$((n + 1)); fi
      fi
      EXTRA_NAMES+=("$next_name"); EXTRA_CMDS+=("$1"); EXTRA_ARGS+=("$next_args")
      next_name=""; next_args=""; shift ;;
  esac
done

if [ ! -x "$LOAD" ]; then
  echo "compare.sh: building framecast-load" >&2
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p framecast-load || exit 1
fi
for tool in taskset ss python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool missing (util-linux, iproute2, python3)" >&2; exit 1; }
done
mkdir -p "$OUT_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$W3_SUBS" -gt $((NOFILE - 100)) ]; then
  echo "compare.sh: RLIMIT_NOFILE is $NOFILE; lowering W3_SUBS from $W3_SUBS to $((NOFILE - 1000))" >&2
  W3_SUBS=$((NOFILE - 1000))
fi

# ---- server list: NAME<TAB>COMMAND<TAB>LOAD-ARGS
LIST=()
for s in $SERVERS; do
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$s,"* ]]; then continue; fi
  if [ ! -x "$HERE/servers/$s/run.sh" ]; then echo "compare.sh: no servers/$s/run.sh" >&2; continue; fi
  a=""
  [ -f "$HERE/servers/$s/load.args" ] && a=$(grep -v '^[[:space:]]*#' "$HERE/servers/$s/load.args" | tr '\n' ' ' | sed 's/ *$//')
  LIST+=("$s"$'\t'"'$HERE/servers/$s/run.sh' {PORT}"$'\t'"$a")
done
for i in "${!EXTRA_CMDS[@]}"; do
  LIST+=("${EXTRA_NAMES[$i]}"$'\t'"${EXTRA_CMDS[$i]}"$'\t'"${EXTRA_ARGS[$i]}")
done
[ ${#LIST[@]} -gt 0 ] || { echo "compare.sh: no servers selected" >&2; exit 2; }

port=$BASE_PORT
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    sleep 0.5
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # name cmd port logfile -> sets SERVER_PID, returns 0 when listening
  local name=$1 cmd=$2 p=$3 log=$4
  cmd=${cmd//\{PORT\}/$p}
  env ${SERVER_ENV[@]+"${SERVER_ENV[@]}"} PORT="$p" taskset -c "$SERVER_CPU" bash -c "exec $cmd" >"$log" 2>&1 &
  SERVER_PID=$!
  local t=0
  while [ "$t" -lt $((STARTUP_TIMEOUT * 10)) ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "compare.sh: $name exited during startup (see $log)" >&2; SERVER_PID=""; return 1
    fi
    if [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then sleep 0.3; return 0; fi
    sleep 0.1; t=$((t + 1))
  done
  echo "compare.sh: $name not listening on $p after ${STARTUP_TIMEOUT}s" >&2
  return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  local t=0
  while kill -0 "$SERVER_PID" 2>/dev/null && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

busy_1s() { # machine-wide CPU busy over 1 s, in % of one core
  local a b
  a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
    d = y[2] - x[2]; if (d <= 0) { print 0 } else { printf "%d", (y[1] - x[1]) * 100 * n / d } }'
}

wait_quiet() {
  local t=0 b
  while :; do
    b=$(busy_1s)
    if [ "$b" -lt "$QUIET_PCT" ]; then
      [ $t -gt 0 ] && echo "   (waited ${t}s for a quiet machine)" >&2
      return 0
    fi
    t=$((t + 1))
    if [ $t -ge "$QUIET_WAIT" ]; then
      echo "   WARNING: machine still ${b}% busy after ${t}s; running anyway" >&2
      return 0
    fi
  done
}

INDEX="$OUT_DIR/index.tsv"
: >"$INDEX"
: >"$OUT_DIR/commands.tsv"

run_one() { # name cmd extra_args workload step -- framecast-load args...
  local name=$1 cmd=$2 extra=$3 wl=$4 step=$5; shift 5
  local tag="$name.$wl${step:+.$step}"
  local json="$OUT_DIR/$tag.json"
  port=$((port + 1))
  while [ -n "$(ss -Htan "sport = :$port" 2>/dev/null)" ]; do port=$((port + 1)); done
  wait_quiet
  echo "== $tag (port $port)" >&2
  if ! start_server "$name" "$cmd" "$port" "$OUT_DIR/$tag.server.log"; then
    printf '%s\t%s\t%s\t%s\n' "$name" "$wl" "$step" "FAILED: server did not start" >>"$INDEX"
    stop_server; return
  fi
  local -a xa=() ca=()
  extra=${extra//\{PORT\}/$port}
  [ -n "$extra" ] && eval "xa=($extra)"
  local common=${LOAD_ARGS//\{PORT\}/$port}
  [ -n "$common" ] && eval "ca=($common)"
  local -a th=()
  [ -n "$LOAD_THREADS" ] && th=(--threads "$LOAD_THREADS")
  local -a cmdline=(taskset -c "$LOADGEN_CPU" "$LOAD" --url "ws://127.0.0.1:$port/" --server-pid "$SERVER_PID"
    --connect-concurrency "$CONNECT_CONCURRENCY" --label "$tag" --json --quiet "${th[@]}" "$@" "${ca[@]}" "${xa[@]}")
  printf '%s\t%s\n' "$tag" "$(printf '%q ' "${cmdline[@]}")" >>"$OUT_DIR/commands.tsv"
  "${cmdline[@]}" >"$OUT_DIR/$tag.out" 2>"$OUT_DIR/$tag.load.log"
  local rc=$?
  tail -n 1 "$OUT_DIR/$tag.out" | grep '^{' >"$json"
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "   server exited during the step" >&2; fi
  stop_server
  if [ $rc -ne 0 ] || [ ! -s "$json" ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" "$wl" "$step" "FAILED: framecast-load rc=$rc ($(tail -n 1 "$OUT_DIR/$tag.load.log"))" >>"$INDEX"
  else
    printf '%s\t%s\t%s\t%s\n' "$name" "$wl" "$step" "$json" >>"$INDEX"
    python3 "$HERE/report.py" --line "$json" >&2
  fi
  sleep 1
}

for entry in "${LIST[@]}"; do
  IFS=$'\t' read -r name cmd extra <<<"$entry"
  for wl in $WORKLOADS; do
    case "$wl" in
      W1)
        for r in $W1_RATES; do
          run_one "$name" "$cmd" "$extra" W1 "$r" --subs "$W1_SUBS" --rate "$r" --tick-ms 1 \
            --payload-bytes "$W1_PAYLOAD" --settle-ms "$SETTLE_MS" --warmup "$W1_WARMUP" --duration "$W1_DURATION"
        done ;;
      W2)
        for b in $W2_BURSTS; do
          run_one "$name" "$cmd" "$extra" W2 "$b" --subs "$W2_SUBS" --burst "$b" --tick-ms "$W2_TICK_MS" \
            --payload-bytes "$W2_PAYLOAD" --settle-ms "$SETTLE_MS" --warmup "$W2_WARMUP" --duration "$W2_DURATION"
        done ;;
      W3)
        run_one "$name" "$cmd" "$extra" W3 "" --subs "$W3_SUBS" --src-ips "$W3_SRC_IPS" --rate 0 \
          --settle-ms "$W3_SETTLE_MS" --warmup 0 --duration "$W3_DURATION" ;;
      *) echo "compare.sh: unknown workload $wl" >&2 ;;
    esac
  done
done

# ---- report
{
  echo "# WebSocket broadcast comparison"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); repository at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "- pinning: server on CPU $SERVER_CPU, framecast-load on CPU $LOADGEN_CPU (taskset); RLIMIT_NOFILE $NOFILE"
  echo "- load: $("$LOAD" --version 2>/dev/null), threads ${LOAD_THREADS:-auto (1 when pinned)}, connect concurrency $CONNECT_CONCURRENCY, settle ${SETTLE_MS} ms${LOAD_ARGS:+, flags for all: \`$LOAD_ARGS\`}"
  [ ${#SERVER_ENV[@]} -gt 0 ] && echo "- server environment (--server-env): \`${SERVER_ENV[*]}\`"
  echo "- toolchains: $(rustc --version 2>/dev/null | cut -d' ' -f1-2); node $(node --version 2>/dev/null); $(go version 2>/dev/null | cut -d' ' -f3); python $(python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
  for wl in $WORKLOADS; do
    case "$wl" in
      W1) echo "- W1 fan-out: $W1_SUBS subs, messages padded to $W1_PAYLOAD bytes, rates [$W1_RATES] msg/s, 1 ms ticks, warmup ${W1_WARMUP}s + ${W1_DURATION}s measured" ;;
      W2) echo "- W2 frame clock: $W2_SUBS subs, bursts of [$W2_BURSTS] msgs every $W2_TICK_MS ms (one step each), padded to $W2_PAYLOAD bytes, warmup ${W2_WARMUP}s + ${W2_DURATION}s" ;;
      W3) echo "- W3 idle memory: $W3_SUBS idle subs over $W3_SRC_IPS source IPs, settle ${W3_SETTLE_MS} ms, held ${W3_DURATION}s" ;;
    esac
  done
  for entry in "${LIST[@]}"; do
    IFS=$'\t' read -r name cmd extra <<<"$entry"
    echo "- server \`$name\`: \`${cmd//$ROOT\//}\`${extra:+, load flags \`$extra\`}"
  done
  echo "- raw JSON, logs and exact commands: $OUT_DIR"
  echo
  python3 "$HERE/report.py" "$INDEX"
} | tee "$OUT_DIR/report.md"

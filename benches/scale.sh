#!/usr/bin/env bash
# Scale run of one server: the class of benches/load.sh — 1 synthetic str0m teacher (VP8 simulcast
# from the embedded clips + Opus), N str0m pupils in one readiness-loop thread, all on 127.0.0.1 —
# for each N of a list, against Ardoise or Janus 1.1.2 VideoRoom (Debian package, configuration
# in benches/janus/), measured the same way so that they can be compared on the same machine.
# The server is pinned to core 0, the load generator to core 1 (as load.sh does).
# `benches/bench.sh` (make bench) runs it for every server and prints the side-by-side table.
#
# Measured over a window that starts SETTLE s after the last pupil joined and lasts DURATION s
# (the load generator takes the readings itself, at the window's edges, with --watch-pid):
#   - server CPU (utime + stime of all its threads, /proc/<pid>/stat) ÷ RTP packets the pupils
#     received in the window (audio + video; Janus has no forwarded-packet counter);
#   - resident memory (/proc/<pid>/status VmRSS): idle before the run → end of the window, ÷ N;
#   - mean video loss (missing sequence numbers over the whole run, joins included, as load.sh
#     reports it; and among the packets that arrived in the window, 100% for a pupil whose video
#     stopped), pupils that got video, and those whose video stopped before the end;
#   - the load generator's own CPU in the window (it shares the machine: ≥ ~90% of core 1 means
#     it, not the server, is the bound), and the whole machine's busy time (/proc/stat, sampled
#     at ticks, so it undercounts bursty packet work but sees continuous work such as a compiler):
#     far more than server + load generator, or a busy machine just before the run, means other
#     work disturbed the run ("disturbed": true).
#
#   - Ardoise only: its forwarding delay p50/p99 (receive → sendmmsg, from /metrics, between the
#     last join + SETTLE and the end of the run).
#
#   PUPILS="50 100" DURATION=30 SERVER=janus MODE=default benches/scale.sh   (MODE=ev2: event_loops = 2)
#   PUPILS=50 benches/scale.sh                                               (Ardoise)
#   SIMULCAST=0 …                                               (the teacher sends the top layer only)
#   CLASSES=20 PUPILS=25 LAYER=auto …    (20 classes side by side, each its teacher and N pupils:
#                                          PUPILS is then per class; Janus gets 20 rooms)
#   ARDOISE__MEDIA__FAN_OUT_PEERS=0|100 WORKERS=2 PIN=0 PUPILS=400 LAYER=auto PACED=1 …
#                                         (one large class on one worker, or over both; the
#                                          JSON then has each worker's share of a core)
#
# Prints, per N, a human line and one line of JSON:
#   {"server":"janus","mode":"default","pupils":N,"cpu_us_per_packet":…,"rss_kib_per_pupil":…,"loss":…,"pupils_ok":…}
set -euo pipefail
cd "$(dirname "$0")/.."
PUPILS=${PUPILS:-50}
DURATION=${DURATION:-30}
RAMP=${RAMP:-10}
SETTLE=${SETTLE:-3}
MODE=${MODE:-default}
SERVER=${SERVER:-ardoise}
PORT=${PORT:-18088}
LAYER=${LAYER:-high}
SIMULCAST=${SIMULCAST:-1}   # 0: the teacher publishes the top layer only
WORKERS=${WORKERS:-0}
CLASSES=${CLASSES:-1}
FEEDBACK=${FEEDBACK:-twcc}  # Ardoise's pupils: twcc, reports, or remb:KBPS (see ardoise loadgen --help)
PACED=${PACED:-0}           # 1: the teachers pace their video like an encoder (loadgen --paced)
JANUS_CONF=$PWD/benches/janus
PIN=${PIN:-1}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  SERVER_CPUS="taskset -c 0"; LOADGEN_CPUS="taskset -c 1"
else
  SERVER_CPUS=""; LOADGEN_CPUS=""
fi
# LOADGEN_NICE=10: the load generator yields to the server when both want a core (unpinned
# runs of a server using both cores: the pupils' sockets hold what waits meanwhile).
[ -n "${LOADGEN_NICE:-}" ] && LOADGEN_CPUS="nice -n $LOADGEN_NICE $LOADGEN_CPUS"
case "$MODE" in
  default | ev2) ;;
  *) echo "MODE must be default or ev2" >&2; exit 2 ;;
esac

if [ "$SERVER" = janus ] && ! command -v janus > /dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y janus
  else
    echo "Janus is not installed; as root: apt-get install -y janus" >&2
    exit 2
  fi
fi

cargo build --release -q -p ardoise
BIN=$PWD/target/release/ardoise
WORK=$(mktemp -d)
# Many pupils: sockets in the load generator, sockets and wake-up fds in Janus.
ulimit -n 65536 2> /dev/null || true
SRV=""; LOADGEN=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2> /dev/null; [ -n "$LOADGEN" ] && kill "$LOADGEN" 2> /dev/null; true; }
trap cleanup EXIT
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Ardoise's forwarding-delay histogram, buckets summed over workers: "le count" lines.
# With an argument: that worker's only.
hist() { curl -s "$BASE/metrics" | awk -v w="${1:-}" '/^ardoise_forward_delay_seconds_bucket/ && (w == "" || index($0, "worker=\"" w "\"")) {match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); s[le] += $2} END {for (k in s) print k, s[k]}'; }
# Each worker's histogram into "$1-w<index>".
hist_workers() { for w in 0 1 2 3; do hist "$w" > "$1-w$w"; done; }
# Each media worker's CPU seconds, with the time they were read: "time" then "worker seconds" lines.
worker_cpu() { date +%s.%N; curl -s "$BASE/metrics" | sed -n 's/^ardoise_worker_cpu_seconds_total{worker="\([0-9]*\)"} \(.*\)/\1 \2/p'; }
# Busy share of the machine over 2 s, in % of one core (from /proc/stat).
machine_busy() {
  local a b
  a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 2
  b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  echo "$a $b $(nproc --all)" | awk '{printf "%.0f", 100 * $5 * ($3 - $1) / ($4 - $2)}'
}

start_janus() {
  rm -rf "$WORK/conf"; mkdir "$WORK/conf"; cp "$JANUS_CONF"/*.jcfg "$WORK/conf/"
  sed -i "s|@CONF_DIR@|$WORK/conf|" "$WORK/conf/janus.jcfg"
  # ev2: shared media loops (event_loops = 2) instead of one thread per handle.
  [ "$MODE" = ev2 ] && sed -i 's|^general: {|general: {\n\tevent_loops = 2|' "$WORK/conf/janus.jcfg"
  sed -i "s|port = 18088|port = $PORT|" "$WORK/conf/janus.transport.http.jcfg"
  # Janus skips loopback interfaces when gathering ICE candidates: this shim clears the flag.
  [ -f "$WORK/lo_shim.so" ] || gcc -shared -fPIC -O2 -o "$WORK/lo_shim.so" "$JANUS_CONF/lo_shim.c" -ldl
  LD_PRELOAD=$WORK/lo_shim.so $SERVER_CPUS janus -F "$WORK/conf" -C "$WORK/conf/janus.jcfg" -o > "$WORK/janus.log" 2>&1 &
  SRV=$!
  URL=http://127.0.0.1:$PORT/janus
  for _ in $(seq 100); do
    curl -sf -X POST -d '{"janus":"info","transaction":"up"}' "$URL" > /dev/null 2>&1 && return 0
    kill -0 "$SRV" 2> /dev/null || break
    sleep 0.1
  done
  echo "janus did not start; see its log:" >&2; tail -20 "$WORK/janus.log" >&2; exit 1
}

start_ardoise() {
  # Emptied first: the server's own redirection happens in the background, after this
  # function may already read the previous run's file.
  : > "$WORK/serve.out"
  # Several classes: bench.toml's limits, and classes classe1…classeN (each id its join code).
  CONFIG=benches/bench.toml
  if [ "$CLASSES" -gt 1 ]; then
    CONFIG=$WORK/classes.toml
    sed '/^\[\[classes\]\]/,/^$/d' benches/bench.toml > "$CONFIG"
    for k in $(seq "$CLASSES"); do printf '\n[[classes]]\nid = "classe%s"\ncode = "classe%s"\ntitle = "Classe %s"\n' "$k" "$k" "$k" >> "$CONFIG"; done
  fi
  ARDOISE__DATA__DIR=$WORK ARDOISE__MEDIA__WORKERS=$WORKERS ARDOISE_LOG=${ARDOISE_LOG:-warn} \
    ARDOISE__MEDIA__MAX_PEERS_PER_CLASS=$(( $(printf '%s\n' $PUPILS | sort -n | tail -1) + 10 )) \
    $SERVER_CPUS "$BIN" serve --config "$CONFIG" --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SRV=$!
  for _ in $(seq 300); do
    grep -q "listening on" "$WORK/serve.out" 2> /dev/null && break
    kill -0 "$SRV" 2> /dev/null || break
    sleep 0.1
  done
  BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
  if [ -z "$BASE" ]; then
    echo "ardoise did not start (alive: $(kill -0 "$SRV" 2> /dev/null && echo yes || echo no)); its output:" >&2
    cat "$WORK/serve.out" "$WORK/serve.err" >&2
    return 1
  fi
  if [ "$CLASSES" -gt 1 ]; then
    TOKEN=$(for k in $(seq "$CLASSES"); do ARDOISE__DATA__DIR=$WORK "$BIN" token --config "$CONFIG" --role teacher --class "classe$k"; done | paste -sd,)
  else
    TOKEN=$(ARDOISE__DATA__DIR=$WORK "$BIN" token --role teacher --class demo)
  fi
}

for N in $PUPILS; do
  BUSY0=$(machine_busy)
  if [ "$SERVER" = janus ]; then
    start_janus; TARGET=(--janus "$URL" --classes "$CLASSES"); LABEL=$MODE
  else
    if ! start_ardoise; then cleanup; SRV=""; continue; fi
    CLASS=demo; [ "$CLASSES" -gt 1 ] && CLASS=classe
    TARGET=(--server "$BASE" --class "$CLASS" --classes "$CLASSES" --token "$TOKEN" --feedback "$FEEDBACK"); LABEL="workers=${WORKERS/#0/auto} feedback=$FEEDBACK"
  fi
  sleep 1
  RSS0=$(rss_kb "$SRV")
  set +e
  EXTRA=(); [ "$SIMULCAST" = 0 ] && EXTRA=(--no-simulcast)
  [ "$PACED" = 1 ] && EXTRA+=(--paced)
  $LOADGEN_CPUS "$BIN" loadgen "${TARGET[@]}" "${EXTRA[@]}" --pupils "$N" --ramp "$RAMP" --layer "$LAYER" \
    --pupils-per-class "$N" --duration $((DURATION + SETTLE)) --settle "$SETTLE" --watch-pid "$SRV" --json "$WORK/load-$N.json" \
    2> "$WORK/loadgen-$N.err" &
  LOADGEN=$!
  : > "$WORK/hist0-$N"; : > "$WORK/hist1-$N"; : > "$WORK/wcpu0-$N"; : > "$WORK/wcpu1-$N"
  if [ "$SERVER" = ardoise ]; then
    # The loadgen prints a progress line each second once every pupil has joined: the window
    # starts SETTLE s after that.
    while kill -0 "$LOADGEN" 2> /dev/null && ! grep -q "s  pupils connected" "$WORK/loadgen-$N.err"; do sleep 0.2; done
    sleep $((SETTLE > 1 ? SETTLE - 1 : 0))
    hist > "$WORK/hist0-$N"; worker_cpu > "$WORK/wcpu0-$N"; hist_workers "$WORK/hist0-$N"
  fi
  wait "$LOADGEN"; STATUS=$?; LOADGEN=""
  [ "$SERVER" = ardoise ] && kill -0 "$SRV" 2> /dev/null && hist > "$WORK/hist1-$N" && worker_cpu > "$WORK/wcpu1-$N" \
    && hist_workers "$WORK/hist1-$N"
  # Each worker's forwarding delay p50 and p99 (µs), for the workers that forwarded.
  BY_WORKER=$(for w in 0 1 2 3; do [ -s "$WORK/hist1-$N-w$w" ] && benches/delay_quantiles.py "$WORK/hist0-$N-w$w" "$WORK/hist1-$N-w$w"; done | paste -sd, || true)
  set -e
  ALIVE=1; kill -0 "$SRV" 2> /dev/null || ALIVE=0
  if [ "$STATUS" != 0 ] || [ ! -s "$WORK/load-$N.json" ]; then
    echo "loadgen failed (status $STATUS, server alive: $ALIVE):" >&2; tail -5 "$WORK/loadgen-$N.err" >&2
    cleanup; SRV=""; continue
  fi
  python3 - "$SERVER" "$LABEL" "$N" "$RSS0" "$ALIVE" "$WORK/load-$N.json" "$BUSY0" "$(benches/delay_quantiles.py "$WORK/hist0-$N" "$WORK/hist1-$N")" "$CLASSES" "$WORK/wcpu0-$N" "$WORK/wcpu1-$N" "${BY_WORKER:-}" <<'PY'
import json, os, sys
server, mode, per_class, rss0, alive, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
busy_before = float(sys.argv[7])
classes = int(sys.argv[9])
n = per_class * classes
p50, p99 = (None if v == 'nan' else int(v) for v in sys.argv[8].split())
r = json.load(open(path))
w = r["window"]
us = w["server_cpu_us_per_packet"]
rss1 = w["server_rss_kib_end"]
rss_per = (rss1 - rss0) / n if rss1 is not None else None
out = {
    "server": server, "mode": mode, "pupils": n, "classes": classes, "pupils_per_class": per_class,
    "paced": os.environ.get("PACED", "0") == "1",
    "cpu_us_per_packet": round(us, 2) if us is not None else None,
    "rss_kib_per_pupil": round(rss_per, 1) if rss_per is not None else None,
    "loss": round(r["mean_video_loss"], 5), "max_loss": round(r["max_video_loss"], 5),
    "window_loss": round(w["mean_video_loss"], 5) if w["mean_video_loss"] is not None else None,
    "window_max_loss": round(w["max_video_loss"], 5) if w["max_video_loss"] is not None else None,
    "pupils_ok": r["pupils_ok"], "pupils_video_stopped": r["pupils_video_stopped"], "freezes": r["freezes"],
    "stale_dropped": r.get("stale_dropped", 0),
    "window_s": round(w["seconds"], 1), "rtp_packets": w["rtp_packets"],
    "packets_per_s": round(w["rtp_packets"] / w["seconds"]),
    "server_cpu_pct": round(100 * w["server_cpu_s"] / w["seconds"], 1) if w["server_cpu_s"] is not None else None,
    "loadgen_cpu_pct": round(100 * w["loadgen_cpu_s"] / w["seconds"], 1),
    "machine_busy_pct": round(100 * w["machine_busy_cores"], 1) if w.get("machine_busy_cores") is not None else None,
    "rss_kib_idle": int(rss0), "rss_kib_end": rss1,
    "video_kbps": round(r["mean_video_kbps"]), "median_ttff_ms": r["median_ttff_ms"] and round(r["median_ttff_ms"]),
    "server_alive": alive,
    "forward_delay_p50_us": p50,
    "forward_delay_p99_us": p99,
    "machine_busy_before_pct": busy_before,
    "e2e_delay_p95_ms": r.get("e2e_delay_p95_ms") and round(r["e2e_delay_p95_ms"], 2),
}
# Ardoise: each media worker's share of a core between the forwarding-delay readings.
def worker_cpu(path):
    lines = open(path).read().split("\n") if os.path.exists(path) else []
    if len(lines) < 2:
        return None, {}
    return float(lines[0]), {int(l.split()[0]): float(l.split()[1]) for l in lines[1:] if l.strip()}
(t0, c0), (t1, c1) = worker_cpu(sys.argv[10]), worker_cpu(sys.argv[11])
if t0 is not None and t1 is not None and t1 > t0:
    out["worker_cpu_pct"] = [round(100 * (c1[w] - c0.get(w, 0)) / (t1 - t0), 1) for w in sorted(c1)]
# Each worker's forwarding delay [p50, p99] (µs), those that forwarded in the window.
out["forward_delay_by_worker_us"] = [
    [None if v == "nan" else int(v) for v in q.split()] for q in sys.argv[12].split(",") if q.strip()
] if len(sys.argv) > 12 else []
# Other work: a busy machine just before the run, or much more busy time in the window than
# server + load generator (the kernel's own loopback work, in softirq, is a few % at most).
ours = (out["server_cpu_pct"] or 0) + out["loadgen_cpu_pct"]
out["disturbed"] = busy_before > 20 or (out["machine_busy_pct"] is not None and out["machine_busy_pct"] > ours + 40)
print(f"{server} ({mode}) N={n} ({classes} × {per_class}): {out['pupils_ok']}/{n} pupils ok ({out['pupils_video_stopped']} stopped getting video), {out['cpu_us_per_packet']} us server CPU per packet "
      f"({out['packets_per_s']} packets/s, server {out['server_cpu_pct']}% of a core, loadgen {out['loadgen_cpu_pct']}%, "
      f"whole machine {out['machine_busy_pct']}% of one core), "
      f"RSS {rss0 / 1024:.1f} -> {(rss1 or 0) / 1024:.1f} MiB ({out['rss_kib_per_pupil']} KiB per pupil), "
      f"video {out['video_kbps']} kbit/s, loss mean {100 * out['loss']:.3f}% max {100 * out['max_loss']:.3f}% "
      f"(in the window {100 * (out['window_loss'] or 0):.3f}% / {100 * (out['window_max_loss'] or 0):.3f}%), freezes {out['freezes']}"
      + (f", forwarding delay p50 {out['forward_delay_p50_us']} us p99 {out['forward_delay_p99_us']} us" if out['forward_delay_p99_us'] else "")
      + (f", workers {out['worker_cpu_pct']}% of a core" if out.get('worker_cpu_pct') else "")
      + (" — DISTURBED by other work on the machine" if out["disturbed"] else ""))
print(json.dumps(out))
PY
  kill "$SRV" 2> /dev/null || true; wait "$SRV" 2> /dev/null || true; SRV=""
  sleep 1
done
echo "logs and JSON results: $WORK" >&2

#!/usr/bin/env bash
# Load run: 1 synthetic teacher (VP8 simulcast ~2 Mbit/s in, top layer ~1.4 Mbit/s + Opus forwarded)
# → N synthetic pupils for D seconds, all on 127.0.0.1. Reports the server's own CPU time
# (from /proc/<pid>/stat) per forwarded RTP packet, the load generator's CPU, and memory.
#
#   PUPILS=50 DURATION=30 benches/load.sh   (LAYER=auto: pupils adapt, with send-side BWE and pacing;
#   TRANSPORT=tcp: teacher and pupils over ICE-TCP only)
set -euo pipefail
cd "$(dirname "$0")/.."
PUPILS=${PUPILS:-50}
DURATION=${DURATION:-30}
RAMP=${RAMP:-10}
WORKERS=${WORKERS:-0}
# Pin the server and the load generator to separate cores (PIN=0 to let the scheduler choose).
PIN=${PIN:-1}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  SERVER_CPUS="taskset -c 0"; LOADGEN_CPUS="taskset -c 1"
else
  SERVER_CPUS=""; LOADGEN_CPUS=""
fi

cargo build --release -q
BIN=$PWD/target/release/ardoise
WORK=$(mktemp -d)
export ARDOISE__DATA__DIR=$WORK ARDOISE__MEDIA__WORKERS=$WORKERS ARDOISE_LOG=${ARDOISE_LOG:-warn}
$SERVER_CPUS "$BIN" serve --config benches/bench.toml --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; kill $LOADGEN 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
TOKEN=$("$BIN" token --role teacher --class demo)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
forwarded() { curl -s "$BASE/metrics" | awk '/^ardoise_rtp_packets_forwarded_total/ {s += $2} END {print s + 0}'; }
# Forwarding-delay histogram, buckets summed over workers: "le count" lines.
hist() { curl -s "$BASE/metrics" | awk '/^ardoise_forward_delay_seconds_bucket/ {match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); s[le] += $2} END {for (k in s) print k, s[k]}'; }
metric() { curl -s "$BASE/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
RSS0=$(rss_kb $SERVER)

JOIN=$(( (PUPILS + RAMP - 1) / RAMP ))
$LOADGEN_CPUS "$BIN" loadgen --server "$BASE" --class demo --pupils "$PUPILS" --ramp "$RAMP" \
  --duration $((DURATION + 4)) --token "$TOKEN" --layer "${LAYER:-high}" --transport "${TRANSPORT:-udp}" \
  --json "$WORK/load.json" 2> "$WORK/loadgen.err" &
LOADGEN=$!
sleep $((JOIN + 3))
T0=$(ticks $SERVER); L0=$(ticks $LOADGEN); F0=$(forwarded); S0=$(date +%s.%N)
hist > "$WORK/hist0"; W0=$(metric ardoise_worker_wakeups_total); TW0=$(metric ardoise_worker_timer_wakeups_total); D0=$(metric ardoise_datagrams_in_total)
sleep "$DURATION"
T1=$(ticks $SERVER); L1=$(ticks $LOADGEN); F1=$(forwarded); S1=$(date +%s.%N)
hist > "$WORK/hist1"; W1=$(metric ardoise_worker_wakeups_total); TW1=$(metric ardoise_worker_timer_wakeups_total); D1=$(metric ardoise_datagrams_in_total)
echo "worker wake-ups/s          $(( (W1 - W0) / DURATION )) (timers $(( (TW1 - TW0) / DURATION ))), datagrams in/s $(( (D1 - D0) / DURATION ))"
RSS1=$(rss_kb $SERVER)
wait $LOADGEN

python3 - "$T0" "$T1" "$L0" "$L1" "$F0" "$F1" "$S0" "$S1" "$HZ" "$RSS0" "$RSS1" "$PUPILS" "$WORK/load.json" "$(benches/delay_quantiles.py "$WORK/hist0" "$WORK/hist1")" <<'PY'
import json, sys
t0, t1, l0, l1, f0, f1 = map(float, sys.argv[1:7]); s0, s1 = float(sys.argv[7]), float(sys.argv[8])
hz, rss0, rss1, pupils = float(sys.argv[9]), float(sys.argv[10]), float(sys.argv[11]), int(sys.argv[12])
r = json.load(open(sys.argv[13]))
wall = s1 - s0
cpu_us = (t1 - t0) / hz * 1e6
fwd = f1 - f0
print(f"pupils                      {pupils} ({r['pupils_ok']} ok)")
print(f"window                      {wall:.1f} s")
print(f"forwarded RTP packets       {fwd:.0f} ({fwd / wall:.0f}/s)")
print(f"server CPU                  {cpu_us / 1e6:.2f} s ({100 * cpu_us / 1e6 / wall:.0f}% of one core)")
print(f"server CPU per packet       {cpu_us / max(fwd, 1):.2f} us")
p50, p99 = sys.argv[14].split()
print(f"forwarding delay            p50 {p50} us, p99 {p99} us (receive -> sendmmsg, in the server)")
print(f"loadgen CPU                 {(l1 - l0) / hz:.2f} s ({100 * (l1 - l0) / hz / wall:.0f}% of one core)")
print(f"server RSS                  {rss0 / 1024:.1f} MiB idle -> {rss1 / 1024:.1f} MiB ({(rss1 - rss0) / pupils:.0f} KiB per pupil)")
print(f"pupil video                 {r['mean_video_kbps']:.0f} kbit/s, loss mean {100 * r['mean_video_loss']:.3f}% max {100 * r['max_video_loss']:.3f}%, freezes {r['freezes']}")
PY

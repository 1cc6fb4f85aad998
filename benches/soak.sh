#!/usr/bin/env bash
# Soak: a school's morning on one server. CLASSES classes of PUPILS_PER_CLASS adaptive pupils
# (one `ardoise loadgen` per class: a str0m teacher publishing simulcast VP8 + Opus, and
# browser-like str0m pupils with the server adapting each one), for MINUTES minutes.
#
# Every INTERVAL seconds it samples the server: resident memory (VmRSS), the heap in use
# (glibc's mallinfo2: what RSS holds minus what the allocator keeps for reuse), open file
# descriptors, threads, each media worker's command queue and ICE-TCP input queue (admin API),
# participants, and the packets it forwarded. Writes the samples as CSV to $OUT (default
# target/soak.csv) and prints a summary comparing the first and the last 5 minutes: RSS and
# descriptors should be flat, queues empty, every pupil still receiving at the end.
#
#   benches/soak.sh                                  (8 × 25 pupils, 30 min)
#   CLASSES=2 PUPILS_PER_CLASS=10 MINUTES=3 benches/soak.sh
#
# The server runs on core 0, the load generators on core 1 (2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
CLASSES=${CLASSES:-8}
PER=${PUPILS_PER_CLASS:-25}
MINUTES=${MINUTES:-30}
INTERVAL=${INTERVAL:-30}
OUT=${OUT:-target/soak.csv}
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/release/ardoise}
[ -n "${BIN_GIVEN:-}" ] || cargo build --release
if [ "$(nproc)" -ge 2 ]; then SERVER_CPUS="taskset -c 0"; LOADGEN_CPUS="taskset -c 1"; else SERVER_CPUS=""; LOADGEN_CPUS=""; fi
WORK=$(mktemp -d)
PIDS=()
# (This run's load generators' results only: the summary reads every one left there.)
rm -rf target/soak
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  mkdir -p target/soak
  cp "$WORK"/serve.err "$WORK"/loadgen-*.err target/soak/ 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cp benches/bench.toml "$WORK/soak.toml"
for c in $(seq 1 "$CLASSES"); do
  printf '\n[[classes]]\nid = "classe-%s"\ncode = "classe-%s"\ntitle = "Classe %s"\n' "$c" "$c" "$c" >> "$WORK/soak.toml"
done
ARDOISE__DATA__DIR=$WORK ARDOISE_LOG=warn \
  $SERVER_CPUS "$BIN" serve --config "$WORK/soak.toml" --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
SRV=$!
PIDS+=("$SRV")
for _ in $(seq 300); do grep -q "listening on" "$WORK/serve.out" 2> /dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
[ -n "$BASE" ] || { cat "$WORK/serve.out" "$WORK/serve.err" >&2; exit 1; }
SECONDS_TOTAL=$((MINUTES * 60))
TTL="$((MINUTES + 30))m"
ADMIN=$(ARDOISE__DATA__DIR=$WORK "$BIN" token --config "$WORK/soak.toml" --role admin --ttl "$TTL")
for c in $(seq 1 "$CLASSES"); do
  TOKEN=$(ARDOISE__DATA__DIR=$WORK "$BIN" token --config "$WORK/soak.toml" --role teacher --class "classe-$c" --ttl "$TTL")
  $LOADGEN_CPUS "$BIN" loadgen --server "$BASE" --class "classe-$c" --token "$TOKEN" --pupils "$PER" --ramp 5 \
    --duration "$SECONDS_TOTAL" --layer auto --json "$WORK/loadgen-$c.json" > /dev/null 2> "$WORK/loadgen-$c.err" &
  PIDS+=("$!")
done

echo "t_s,rss_kib,fds,threads,participants,commands_queued,tcp_input_queued,datagrams_out,heap_kib" > "$OUT"
START=$(date +%s)
while [ $(( $(date +%s) - START )) -le $((SECONDS_TOTAL + 10)) ]; do
  T=$(( $(date +%s) - START ))
  kill -0 "$SRV" 2> /dev/null || { echo "the server died (its log: target/soak/serve.err)" >&2; exit 1; }
  RSS=$(awk '/^VmRSS/ {print $2}' /proc/$SRV/status || true)
  FDS=$(ls /proc/$SRV/fd 2> /dev/null | wc -l)
  THREADS=$(awk '/^Threads/ {print $2}' /proc/$SRV/status || true)
  STATS=$(curl -sf -H "Authorization: Bearer $ADMIN" "$BASE/api/admin/classes" | python3 -c '
import json, sys
v = json.load(sys.stdin)
w = v["workers"]
print(sum(len(c.get("participants", [])) for c in v["classes"]),
      max(x.get("commands_queued", 0) for x in w), max(x.get("tcp_input_queued", 0) for x in w),
      sum(x.get("datagrams_out", 0) for x in w), (v["process"].get("heap_in_use_bytes") or 0) // 1024, sep=",")' || echo ",,,,")
  echo "$T,$RSS,$FDS,$THREADS,$STATS" >> "$OUT"
  sleep "$INTERVAL"
done
for p in "${PIDS[@]:1}"; do wait "$p" || echo "a load generator failed: see its log" >&2; done
mkdir -p target/soak
cp "$WORK"/loadgen-*.json "$WORK"/loadgen-*.err target/soak/ 2> /dev/null || true

python3 - "$OUT" target/soak "$CLASSES" "$PER" "$MINUTES" << 'EOF'
import csv, glob, json, sys
out, work, classes, per, minutes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [r for r in csv.DictReader(open(out)) if r["participants"] and r["rss_kib"]]
# Only the samples while every class is full: not the joins, not after the load generators left.
full = max(int(r["participants"]) for r in rows)
rows = [r for r in rows if int(r["participants"]) == full]
def window(lo, hi):
    return [r for r in rows if lo <= int(r["t_s"]) <= hi] or rows[-1:]
end = int(rows[-1]["t_s"])
first, last = window(60, 360), window(end - 300, end)
half = window(end // 2, end)
def mean(rs, k):
    return sum(float(r[k]) for r in rs) / len(rs)
rss0, rss1 = mean(first, "rss_kib"), mean(last, "rss_kib")
fd0, fd1 = mean(first, "fds"), mean(last, "fds")
hours = max(1, int(last[-1]["t_s"]) - int(first[0]["t_s"])) / 3600
loads = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/loadgen-*.json"))]
ok = sum(l["pupils_ok"] for l in loads)
stopped = sum(l.get("pupils_video_stopped", 0) for l in loads)
loss = max(l["mean_video_loss"] for l in loads)
print(f"soak: {classes} classes x {per} pupils, {minutes} min, sampled every {rows[1]['t_s'] if len(rows) > 1 else '?'} s")
print(f"  RSS  {rss0/1024:.1f} MiB (min 1-6) -> {rss1/1024:.1f} MiB (last 5 min): {(rss1-rss0)/1024/hours:+.1f} MiB/h")
print(f"  RSS over the second half: {int(half[0]['rss_kib'])/1024:.1f} -> {int(half[-1]['rss_kib'])/1024:.1f} MiB, "
      f"largest step between samples after the first minute {max([int(b['rss_kib']) - int(a['rss_kib']) for a, b in zip(rows, rows[1:]) if int(a['t_s']) >= 60] or [0])/1024:.1f} MiB")
heap0, heap1 = mean(first, "heap_kib"), mean(last, "heap_kib")
print(f"  heap in use (mallinfo2) {heap0/1024:.1f} MiB (min 1-6) -> {heap1/1024:.1f} MiB (last 5 min): {(heap1-heap0)/1024/hours:+.1f} MiB/h")
print(f"  heap in use over the second half: {int(half[0]['heap_kib'])/1024:.1f} -> {int(half[-1]['heap_kib'])/1024:.1f} MiB")
print(f"  fds  {fd0:.0f} -> {fd1:.0f}; threads {rows[0]['threads']} -> {rows[-1]['threads']}")
print(f"  queues: commands max {max(int(r['commands_queued']) for r in rows)}, ICE-TCP input max {max(int(r['tcp_input_queued']) for r in rows)}")
print(f"  participants {first[0]['participants']} -> {last[-1]['participants']}; pupils with video {ok}/{classes*per}, video stopped {stopped}, worst class mean loss {loss:.4f}")
print(json.dumps({"classes": classes, "pupils_per_class": per, "minutes": minutes,
                  "rss_mib_first": round(rss0/1024, 1), "rss_mib_last": round(rss1/1024, 1),
                  "rss_mib_per_hour": round((rss1-rss0)/1024/hours, 2),
                  "heap_mib_first": round(heap0/1024, 1), "heap_mib_last": round(heap1/1024, 1), "fds_first": fd0, "fds_last": fd1,
                  "pupils_ok": ok, "video_stopped": stopped}))
EOF

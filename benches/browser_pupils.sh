#!/usr/bin/env bash
# Relay cost with real browsers: one class of PUPILS pupils in Chromium against the same number
# of the load generator's browser-like pupils, alternately, on the same server and the same
# paced str0m teacher. Each run gives the server's CPU per packet it forwarded, measured the
# same way for both kinds of pupils:
#   - the server's CPU: the sum of its threads' /proc/PID/task/*/schedstat (ns);
#   - its packets: `ardoise_rtp_packets_forwarded_total`, and its NACKs `ardoise_nacks_total`;
#   - what the pupils send it (feedback, reports, STUN): the datagrams it received
#     (`ardoise_datagrams_in_total`) less the teacher's RTP (`ardoise_rtp_packets_in_total`);
#   - over DURATION s, from SETTLE s after every pupil receives video.
# The server is pinned to core 0; the teacher and the pupils (loadgen or Chromium) to core 1.
# Chromium's pupils share one page (each its own join, token and RTCPeerConnection, adaptive:
# tests/browser/pupils_load.mjs).
#
#   benches/browser_pupils.sh
#   PUPILS=10 DURATION=20 ROUNDS=3 benches/browser_pupils.sh
#
# Needs a quiet machine. Results: one JSON line per run on stdout, then a table.
set -euo pipefail
cd "$(dirname "$0")/.."
PUPILS=${PUPILS:-25}
DURATION=${DURATION:-20}
SETTLE=${SETTLE:-5}
ROUNDS=${ROUNDS:-2}
KINDS=${KINDS:-loadgen chromium}

cargo build --release -q -p ardoise
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
BIN=$PWD/target/release/ardoise
WORK=$(mktemp -d)
SRV=""; TEACHER=""; PUPIL=""
cleanup() { for p in $PUPIL $TEACHER $SRV; do kill "$p" 2> /dev/null; done; true; }
trap cleanup EXIT
. benches/server.sh

# Wait until `file` holds `text` (the run's process `pid` still alive), at most `secs`.
wait_for() {
  local file=$1 text=$2 pid=$3 secs=$4
  for _ in $(seq $((secs * 5))); do
    grep -q "$text" "$file" 2> /dev/null && return 0
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.2
  done
  echo "no \"$text\" in $file:" >&2; tail -5 "$file" >&2; return 1
}

# One run: the server, then the pupils of `kind`; prints one JSON line.
run() {
  local kind=$1 ready
  rm -rf "$WORK/data"
  start_server 0 "$WORK/data"
  : > "$WORK/pupils.err"; : > "$WORK/pupils.out"
  local live=$((SETTLE + DURATION + 90))
  if [ "$kind" = loadgen ]; then
    taskset -c 1 "$BIN" loadgen --server "$BASE" --class demo --token "$TOKEN" --pupils "$PUPILS" --ramp 25 \
      --layer auto --paced --duration "$live" --settle 1 > "$WORK/pupils.out" 2> "$WORK/pupils.err" &
    PUPIL=$!
    ready="s  pupils connected"
  else
    taskset -c 1 "$BIN" loadgen --server "$BASE" --class demo --token "$TOKEN" --pupils 0 --paced \
      --duration "$live" > /dev/null 2> "$WORK/teacher.err" &
    TEACHER=$!
    for _ in $(seq 100); do [ "$(counter ardoise_rtp_packets_in_total)" -gt 0 ] && break; sleep 0.2; done
    taskset -c 1 node tests/browser/pupils_load.mjs "$BASE" "$PUPILS" $((SETTLE + DURATION + 2)) \
      > "$WORK/pupils.out" 2> "$WORK/pupils.err" &
    PUPIL=$!
    ready="ready"
  fi
  wait_for "$WORK/pupils.err" "$ready" "$PUPIL" 120
  sleep "$SETTLE"
  local c0 f0 n0 d0 c1 f1 n1 d1
  c0=$(cpu_ns); f0=$(counter ardoise_rtp_packets_forwarded_total); n0=$(counter ardoise_nacks_total)
  d0=$(($(counter ardoise_datagrams_in_total) - $(counter ardoise_rtp_packets_in_total)))
  sleep "$DURATION"
  c1=$(cpu_ns); f1=$(counter ardoise_rtp_packets_forwarded_total); n1=$(counter ardoise_nacks_total)
  d1=$(($(counter ardoise_datagrams_in_total) - $(counter ardoise_rtp_packets_in_total)))
  if [ "$kind" = chromium ]; then wait "$PUPIL" || true; else kill "$PUPIL" 2> /dev/null; wait "$PUPIL" || true; fi
  PUPIL=""
  [ -n "$TEACHER" ] && { kill "$TEACHER" 2> /dev/null; wait "$TEACHER" || true; TEACHER=""; }
  kill "$SRV"; wait "$SRV" || true; SRV=""
  python3 - "$kind" "$PUPILS" "$DURATION" "$c0" "$c1" "$f0" "$f1" "$n0" "$n1" "$d0" "$d1" "$WORK/pupils.out" <<'PY'
import json, sys
kind, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c0, c1, f0, f1, n0, n1, d0, d1 = (int(x) for x in sys.argv[4:12])
r = {"kind": kind, "pupils": n, "secs": secs, "server_cpu_pct": round((c1 - c0) / 1e7 / secs, 2),
     "forwarded_per_s": round((f1 - f0) / secs), "nacks_per_s": round((n1 - n0) / secs, 1),
     "feedback_in_per_s_per_pupil": round((d1 - d0) / secs / n, 1),
     "cpu_us_per_packet": round((c1 - c0) / 1e3 / (f1 - f0), 2) if f1 > f0 else None}
if kind == "chromium":
    try:
        out = json.loads(open(sys.argv[12]).read().strip().splitlines()[-1])
        p = out.get("pupils") or []
        r["chromium_ok"] = out.get("ok")
        r["chromium_error"] = out.get("error")
        if p:
            r["frames_decoded_per_s"] = round(sum(x["framesDecoded"] for x in p) / len(p) / secs, 1)
            r["widths"] = sorted({x["width"] for x in p})
    except (IndexError, ValueError) as e:
        r["chromium_error"] = f"no result: {e}"
print(json.dumps(r))
PY
}

: > "$WORK/runs.jsonl"
for round in $(seq "$ROUNDS"); do
  for kind in $KINDS; do
    echo "== round $round: $PUPILS $kind pupils" >&2
    run "$kind" | tee -a "$WORK/runs.jsonl"
  done
done
python3 - "$WORK/runs.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| pupils | server CPU % of a core | packets forwarded /s | datagrams in /s per pupil | NACKs /s | µs per forwarded packet |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['pupils']} {r['kind']} | {r['server_cpu_pct']} | {r['forwarded_per_s']} | {r['feedback_in_per_s_per_pupil']} | {r['nacks_per_s']} | {r['cpu_us_per_packet']} |")
PY

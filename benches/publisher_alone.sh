#!/usr/bin/env bash
# The fixed cost of a publisher (issue 18): one str0m teacher and nobody watching. The server
# (one media worker) is pinned to core 0, the teacher (`ardoise loadgen --pupils 0`) to core 1;
# over DURATION s, from 8 s after the start: the server's CPU (the sum of its threads'
# /proc/PID/task/*/schedstat, ns) per RTP packet it received (`ardoise_rtp_packets_in_total`),
# and its wake-ups (`ardoise_worker_wakeups_total`).
#
#   benches/publisher_alone.sh            # the teacher sends each frame as a burst
#   PACED=1 benches/publisher_alone.sh    # the teacher paces its packets like an encoder
#
# Compare with the floor of one wake-up per datagram: `cargo bench --bench send_floor -- 0 311 15`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
cargo build --release -q -p ardoise
BIN=$PWD/target/release/ardoise
WORK=$(mktemp -d)
SRV=""; TEACHER=""
trap 'kill $SRV $TEACHER 2> /dev/null; true' EXIT
. benches/server.sh
start_server 0 "$WORK"
PACING=(); [ "${PACED:-0}" = 1 ] && PACING=(--paced)
taskset -c 1 "$BIN" loadgen --server "$BASE" --class demo --token "$TOKEN" --pupils 0 "${PACING[@]}" \
  --duration $((DURATION + 30)) > /dev/null 2>&1 &
TEACHER=$!
sleep 8
c0=$(cpu_ns); p0=$(counter ardoise_rtp_packets_in_total); w0=$(counter ardoise_worker_wakeups_total)
sleep "$DURATION"
c1=$(cpu_ns); p1=$(counter ardoise_rtp_packets_in_total); w1=$(counter ardoise_worker_wakeups_total)
python3 -c 'import json, sys
c0, c1, p0, p1, w0, w1, secs, paced = (float(x) for x in sys.argv[1:])
print(json.dumps({"paced": paced == 1, "packets_in_per_s": round((p1 - p0) / secs), "wakeups_per_s": round((w1 - w0) / secs),
                  "server_cpu_pct": round((c1 - c0) / 1e7 / secs, 2),
                  "cpu_us_per_packet_in": round((c1 - c0) / 1e3 / (p1 - p0), 2) if p1 > p0 else None}))' \
  "$c0" "$c1" "$p0" "$p1" "$w0" "$w1" "$DURATION" "${PACED:-0}"

#!/usr/bin/env bash
# Studio benchmark: CPU of `ardoise studio` (document+camera picture in picture, test sources
# with the moving ball, three simulcast layers) and its capture-to-wire latency (source PTS →
# frame handed to str0m for sending, top layer), for VP8 and for H.264.
#
#   DURATION=20 benches/studio.sh
#   CAMERA=test:ball@30 DOCUMENT=test:smpte@15 CODECS=vp8 benches/studio.sh   (device-like inputs:
#   each at its own rate and phase, through the device path)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
cargo build --release -q
BIN=$PWD/target/release/ardoise
WORK=$(mktemp -d)
export ARDOISE__DATA__DIR=$WORK ARDOISE_LOG=warn
"$BIN" serve --config benches/bench.toml --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$WORK/serve.out" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; kill $STUDIO 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
HZ=$(getconf CLK_TCK)
for codec in ${CODECS:-vp8 h264}; do
  CTL=127.0.0.1:$((18900 + RANDOM % 1000))
  ARDOISE__STUDIO__CODEC=$codec ARDOISE__STUDIO__CONTROL=$CTL ARDOISE__STUDIO__CAMERA=${CAMERA:-test:ball} \
    ARDOISE__STUDIO__DOCUMENT=${DOCUMENT:-test:smpte} ARDOISE__STUDIO__LAYOUT=document+camera \
    "$BIN" studio --server "$BASE" > "$WORK/studio.out" 2>&1 &
  STUDIO=$!
  sleep 5
  T0=$(awk '{print $14 + $15}' /proc/$STUDIO/stat)
  sleep "$DURATION"
  T1=$(awk '{print $14 + $15}' /proc/$STUDIO/stat)
  STATE=$(curl -s "http://$CTL/state")
  kill -TERM $STUDIO; wait $STUDIO || true
  python3 - "$codec" "$T0" "$T1" "$HZ" "$DURATION" "$STATE" <<'PY'
import json, sys
codec, t0, t1, hz, dur, state = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), json.loads(sys.argv[6])
cpu = (t1 - t0) / hz / dur * 100
p50, p95 = state["latency_us"]
print(f"{codec}: studio CPU {cpu:.0f}% of one core; capture-to-wire latency p50 {p50/1000:.1f} ms, p95 {p95/1000:.1f} ms; frames {state['video_frames']}; late lead frames {state.get('late_lead_frames')}; connected {state['connected']}")
PY
done

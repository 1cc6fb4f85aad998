#!/usr/bin/env bash
# The relay load benchmark (`make bench`): 1 teacher → N pupils for each N, against Ardoise and
# against Janus 1.1.2 VideoRoom in its default mode and with event_loops = 2, one after the other
# on the same machine (benches/scale.sh does each run), then the side-by-side table: server CPU
# µs per forwarded packet, resident memory per pupil, loss, Ardoise's forwarding delay, the
# Ardoise/Janus ratios and the largest N with loss under 0.5%.
#
#   benches/bench.sh                                  (N = 50 100 200 400 800, 30 s windows)
#   PUPILS="50 100" DURATION=10 SERVERS="ardoise janus:ev2" benches/bench.sh
#
# Needs a quiet machine (each run flags itself "disturbed" otherwise). The summary is printed
# and written to target/bench/summary.md; copy it into benches/RESULTS.md with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
export PUPILS=${PUPILS:-50 100 200 400 800}
export DURATION=${DURATION:-30}
export RAMP=${RAMP:-25}
SERVERS=${SERVERS:-ardoise janus:default janus:ev2}
OUT=target/bench
mkdir -p "$OUT"
# APPEND=1 adds to the previous results (e.g. rerun one server); else start afresh.
[ "${APPEND:-0}" = 1 ] || : > "$OUT/results.jsonl"
for s in $SERVERS; do
  server=${s%%:*}; mode=default
  [ "$s" != "$server" ] && mode=${s#*:}
  echo "== $server ${mode}: N = $PUPILS" >&2
  SERVER=$server MODE=$mode benches/scale.sh | tee "$OUT/$server-$mode.txt" | grep -v '^{' >&2 || true
  if [ "${APPEND:-0}" = 1 ]; then
    # Replace this server's earlier rows.
    python3 -c "import json,sys; rows=[l for l in open(sys.argv[1]) if l.strip() and not (json.loads(l)['server'], json.loads(l)['mode'].split('=')[0]) == (sys.argv[2], sys.argv[3].split('=')[0])]; open(sys.argv[1],'w').writelines(rows)" "$OUT/results.jsonl" "$server" "$( [ "$server" = ardoise ] && echo workers || echo "$mode")"
  fi
  grep '^{' "$OUT/$server-$mode.txt" >> "$OUT/results.jsonl" || true
done
benches/summary.py "$OUT/results.jsonl" | tee "$OUT/summary.md"
echo "raw results: $OUT/results.jsonl, per-run logs in the directories printed above" >&2

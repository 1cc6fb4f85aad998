#!/usr/bin/env bash
# Relay cost at real class sizes (`make bench`): many classes of adaptive pupils on one node,
# Ardoise and Janus 1.1.2 VideoRoom side by side in one run (benches/scale.sh does each run):
#   - CLASSES classes × PER_CLASS pupils (default 20 × 25), each class its own str0m teacher
#     (three VP8 layers + Opus), the pupils adaptive (`--layer auto`: on Ardoise each gets the
#     layer its link carries; Janus does not adapt and sends the top layer);
#   - one class of PER_CLASS, the same way: the fixed cost of a publisher shows there;
#   - the socket floor (benches/send_floor.rs): the same class's sends and reads with no RTP.
# Then the table: server CPU µs per packet the pupils received, and Ardoise ÷ Janus.
#
#   benches/classes.sh
#   CLASSES=10 PER_CLASS=25 DURATION=20 SERVERS="ardoise janus:ev2" benches/classes.sh
#
# Needs a quiet machine. Results: target/bench/classes.jsonl and target/bench/classes.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CLASSES=${CLASSES:-20}
PER_CLASS=${PER_CLASS:-25}
export DURATION=${DURATION:-30}
export RAMP=${RAMP:-25}
export LAYER=auto
SERVERS=${SERVERS:-ardoise janus:ev2 janus:default}
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/classes.jsonl"
for classes in "$CLASSES" 1; do
  for s in $SERVERS; do
    server=${s%%:*}; mode=default
    [ "$s" != "$server" ] && mode=${s#*:}
    echo "== $server $mode: $classes × $PER_CLASS pupils" >&2
    CLASSES=$classes PUPILS=$PER_CLASS SERVER=$server MODE=$mode benches/scale.sh \
      | tee -a "$OUT/classes.log" | grep '^{' >> "$OUT/classes.jsonl" || true
  done
done
# The floor under any relay on this machine (benches/send_floor.rs): the socket work alone for
# one class, at the packet rate each pupil received in the one-class run.
RATE=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]; r=[x for x in r if x["classes"]==1 and x["server"]=="ardoise" and x["packets_per_s"]]; print(round(r[0]["packets_per_s"]/r[0]["pupils"]) if r else 224)' "$OUT/classes.jsonl")
cargo bench -q --bench send_floor -- "$PER_CLASS" "$RATE" "$DURATION" | grep '^{' | sed 's/^{/{"floor": true, /' >> "$OUT/classes.jsonl" || true
python3 - "$OUT/classes.jsonl" <<'PY' | tee "$OUT/classes.md"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in lines if not r.get("floor")]
floors = [r for r in lines if r.get("floor")]
print("| classes × pupils | server | CPU µs per packet | packets/s | server CPU % of a core | loss (window) | pupils ok | RSS KiB per pupil |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    label = r["server"] + ("" if r["server"] == "ardoise" else f" ({r['mode']})")
    flag = " (disturbed)" if r.get("disturbed") else ""
    print(f"| {r['classes']} × {r['pupils_per_class']} | {label}{flag} | {r['cpu_us_per_packet']} | {r['packets_per_s']} | {r['server_cpu_pct']} "
          f"| {100 * (r['window_loss'] or 0):.3f}% | {r['pupils_ok']}/{r['pupils']} | {r['rss_kib_per_pupil']} |")
print()
for classes in sorted({r["classes"] for r in rows}, reverse=True):
    ours = [r for r in rows if r["classes"] == classes and r["server"] == "ardoise" and r["cpu_us_per_packet"]]
    janus = [r for r in rows if r["classes"] == classes and r["server"] == "janus" and r["cpu_us_per_packet"]]
    if ours and janus:
        best = min(janus, key=lambda r: r["cpu_us_per_packet"])
        print(f"- {classes} × {ours[0]['pupils_per_class']}: Ardoise {ours[0]['cpu_us_per_packet']} µs per packet, "
              f"Janus's best ({best['mode']}) {best['cpu_us_per_packet']} µs: ratio {ours[0]['cpu_us_per_packet'] / best['cpu_us_per_packet']:.2f} (goal ≤ 0.25)")
janus1 = [r for r in rows if r["classes"] == 1 and r["server"] == "janus" and r["cpu_us_per_packet"]]
for f in floors:
    best = min((r["cpu_us_per_packet"] for r in janus1), default=None)
    ratio = f" = {f['cpu_us_per_forwarded_packet'] / best:.2f} of Janus's best" if best else ""
    print(f"- The socket floor (benches/send_floor.rs, {f['pupils']} pupils, {f['packets_in_per_s']} packets in/s, no RTP, no SRTP): "
          f"{f['cpu_us_per_forwarded_packet']} µs per forwarded packet{ratio}")
PY

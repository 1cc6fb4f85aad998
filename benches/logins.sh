#!/usr/bin/env bash
# Logins during a class (issue 13): 1 synthetic teacher → PUPILS synthetic pupils (200 by
# default) for a quiet window of D seconds, then the same window again while teachers log in
# at RATE logins/s (argon2id, 20/s by default) from 100 accounts. Reports the login latency
# (p50/p99) and the server's forwarding delay (p50/p99) in both windows, side by side.
#
#   PUPILS=200 RATE=20 DURATION=20 benches/logins.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PUPILS=${PUPILS:-200}
RATE=${RATE:-20}
DURATION=${DURATION:-20}
RAMP=${RAMP:-20}

cargo build --release -q
BIN=${BIN:-$PWD/target/release/ardoise}
WORK=$(mktemp -d)
export ARDOISE__DATA__DIR=$WORK ARDOISE_LOG=${ARDOISE_LOG:-warn}
# The benchmark measures the cost of logins, not their limits: every login comes from 127.0.0.1.
export ARDOISE__ACCOUNTS__LOGINS_PER_IP_PER_MINUTE=100000 ARDOISE__ACCOUNTS__LOGINS_PER_ACCOUNT_PER_MINUTE=100000
SCHOOL=$("$BIN" school add --config benches/bench.toml --departement 02 --name "École du banc d'essai")
for i in $(seq 100); do
  echo "mot de passe du banc $i" | "$BIN" user add --config benches/bench.toml --email "prof$i@bench.fr" --role teacher --school "$SCHOOL" --password-stdin > /dev/null
done
"$BIN" serve --config benches/bench.toml --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; kill $LOADGEN 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
TOKEN=$("$BIN" token --config benches/bench.toml --role teacher --class demo)
hist() { curl -s "$BASE/metrics" | awk '/^ardoise_forward_delay_seconds_bucket/ {match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); s[le] += $2} END {for (k in s) print k, s[k]}'; }

JOIN=$(( (PUPILS + RAMP - 1) / RAMP ))
"$BIN" loadgen --server "$BASE" --class demo --pupils "$PUPILS" --ramp "$RAMP" --duration $((2 * DURATION + 8)) \
  --token "$TOKEN" --layer "${LAYER:-high}" --json "$WORK/load.json" 2> "$WORK/loadgen.err" &
LOADGEN=$!
sleep $((JOIN + 3))
hist > "$WORK/h0"; sleep "$DURATION"; hist > "$WORK/h1"
# The login client stands for browsers on other machines: it yields the CPU to the server.
nice -n 19 python3 - "$BASE" "$RATE" "$DURATION" > "$WORK/logins" <<'PY'
import json, sys, threading, time, urllib.request
base, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lat, errors, lock = [], [], threading.Lock()
def login(i):
    body = json.dumps({"email": f"prof{i % 100 + 1}@bench.fr", "password": f"mot de passe du banc {i % 100 + 1}"}).encode()
    req = urllib.request.Request(base + "/api/login", body, {"Content-Type": "application/json"})
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read(); ok = r.status == 200
    except Exception as e:
        ok = False; errors.append(str(e))
    with lock:
        if ok: lat.append((time.monotonic() - t) * 1000)
threads, t0, n = [], time.monotonic(), int(rate * duration)
for i in range(n):
    time.sleep(max(0, t0 + i / rate - time.monotonic()))  # an open loop: 20/s whatever the answers
    th = threading.Thread(target=login, args=(i,)); th.start(); threads.append(th)
for th in threads: th.join()
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")
print(f"{len(lat)} {len(errors)} {q(0.5):.1f} {q(0.99):.1f} {lat[-1] if lat else float('nan'):.1f}")
PY
hist > "$WORK/h2"
wait $LOADGEN || true
read -r OK ERR P50 P99 MAX < "$WORK/logins"
read -r Q50 Q99 < <(benches/delay_quantiles.py "$WORK/h0" "$WORK/h1")
read -r L50 L99 < <(benches/delay_quantiles.py "$WORK/h1" "$WORK/h2")
echo "pupils $PUPILS, logins $RATE/s for ${DURATION}s: $OK ok, $ERR failed"
echo "login latency ms            p50 $P50  p99 $P99  max $MAX"
echo "forwarding delay us, quiet  p50 $Q50  p99 $Q99"
echo "forwarding delay us, logins p50 $L50  p99 $L99"

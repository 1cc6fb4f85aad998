#!/usr/bin/env bash
# Pupils served by 1, 2 and 3 nodes of a cluster on this box (issue 15): CLASSES classes of
# PER_CLASS adaptive pupils, every request sent to node 1 (the load generator follows the
# 307s to each class's node), each node one media worker, the nodes pinned to core 0 and the
# load generator to core 1; a private PostgreSQL (Debian's) the nodes share. Every node's
# CPU over the steady window, the classes it got, the pupils' loss.
#
#   benches/cluster.sh
#   NODES="1 3" CLASSES=6 PER_CLASS=25 DURATION=20 benches/cluster.sh
#
# Must run as root (PostgreSQL's initdb and pg_ctl run as the postgres user). Results:
# target/bench/cluster.jsonl and target/bench/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-1 2 3}
CLASSES=${CLASSES:-6}
PER_CLASS=${PER_CLASS:-25}
DURATION=${DURATION:-20}
SETTLE=${SETTLE:-4}
RAMP=${RAMP:-25}
SECRET=bench-token-secret-0123456789abcdef0123456789
CLUSTER_SECRET=bench-cluster-secret-0123456789abcdef0123456789
cargo build --release -q -p ardoise
BIN=$PWD/target/release/ardoise
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/cluster.jsonl"
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=(); LOADGEN=""
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  [ -n "$LOADGEN" ] && kill "$LOADGEN" 2> /dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U postgres --no-sync -E UTF8 > /dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off" start > /dev/null
CONFIG=$WORK/cluster.toml
sed '/^\[\[classes\]\]/,/^$/d' benches/bench.toml > "$CONFIG"
for k in $(seq "$CLASSES"); do printf '\n[[classes]]\nid = "classe%s"\ncode = "classe%s"\ntitle = "Classe %s"\n' "$k" "$k" "$k" >> "$CONFIG"; done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

for n in $NODES; do
  DB=ardoise_bench_$n
  runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE $DB"
  URL=postgres://postgres@127.0.0.1:$PGPORT/$DB
  PIDS=(); BASES=()
  for k in $(seq "$n"); do
    port=$(free_port)
    mkdir -p "$WORK/n$n-$k"
    ARDOISE__DATA__DIR=$WORK/n$n-$k ARDOISE__DATABASE__URL=$URL ARDOISE__AUTH__SECRET=$SECRET \
      ARDOISE__CLUSTER__SECRET=$CLUSTER_SECRET ARDOISE__CLUSTER__NODE_ID=node-$k ARDOISE__CLUSTER__PUBLIC_URL=http://127.0.0.1:$port \
      ARDOISE__MEDIA__WORKERS=1 ARDOISE_LOG=${ARDOISE_LOG:-warn} \
      taskset -c 0 "$BIN" serve --config "$CONFIG" --http "127.0.0.1:$port" --udp 127.0.0.1:0 \
      > "$WORK/n$n-$k.out" 2> "$WORK/n$n-$k.err" &
    PIDS+=($!); BASES+=("http://127.0.0.1:$port")
    for _ in $(seq 300); do grep -q "listening on" "$WORK/n$n-$k.out" 2> /dev/null && break; sleep 0.1; done
  done
  sleep 2 # two heartbeats: every node sees the others
  TOKEN=$(for k in $(seq "$CLASSES"); do
    ARDOISE__DATA__DIR=$WORK/n$n-1 ARDOISE__DATABASE__URL=$URL ARDOISE__AUTH__SECRET=$SECRET \
      "$BIN" token --config "$CONFIG" --role teacher --class "classe$k"; done | paste -sd,)
  echo "== $n node(s): $CLASSES × $PER_CLASS pupils through ${BASES[0]}" >&2
  taskset -c 1 "$BIN" loadgen --server "${BASES[0]}" --class classe --classes "$CLASSES" --token "$TOKEN" \
    --pupils $((CLASSES * PER_CLASS)) --pupils-per-class "$PER_CLASS" --ramp "$RAMP" --layer auto \
    --duration $((DURATION + SETTLE)) --settle "$SETTLE" --json "$WORK/load-$n.json" 2> "$WORK/loadgen-$n.err" &
  LOADGEN=$!
  while kill -0 "$LOADGEN" 2> /dev/null && ! grep -q "s  pupils connected" "$WORK/loadgen-$n.err"; do sleep 0.2; done
  sleep $((SETTLE > 1 ? SETTLE - 1 : 0))
  C0=(); for p in "${PIDS[@]}"; do C0+=("$(cpu_ticks "$p")"); done
  T0=$(date +%s.%N)
  wait "$LOADGEN" || true; LOADGEN=""
  T1=$(date +%s.%N)
  C1=(); for p in "${PIDS[@]}"; do C1+=("$(cpu_ticks "$p")"); done
  OWNED=$(for b in "${BASES[@]}"; do curl -s "$b/metrics" | awk '/^ardoise_cluster_classes_owned/ {print $2}'; done | paste -sd,)
  python3 - "$WORK/load-$n.json" "$n" "$T0" "$T1" "$(getconf CLK_TCK)" "${C0[*]}" "${C1[*]}" "$OWNED" <<'PY' | tee -a "$OUT/cluster.jsonl"
import json, sys
load = json.load(open(sys.argv[1]))
n, t0, t1, hz = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
c0, c1 = [int(x) for x in sys.argv[6].split()], [int(x) for x in sys.argv[7].split()]
cpu = [(b - a) / hz for a, b in zip(c0, c1)]
w = load.get("window") or {}
packets = w.get("rtp_packets") or 0
secs = t1 - t0
print(json.dumps({
    "nodes": n, "classes": load.get("classes"), "pupils": load["pupils"], "pupils_ok": load["pupils_ok"],
    "classes_per_node": [int(float(x)) for x in sys.argv[8].split(",") if x],
    "node_cpu_pct": [round(100 * c / secs, 1) for c in cpu],
    "total_cpu_pct": round(100 * sum(cpu) / secs, 1),
    "cpu_us_per_packet": round(1e6 * sum(cpu) / packets, 2) if packets else None,
    "packets_per_s": round(packets / (w.get("seconds") or 1)),
    "window_loss": w.get("mean_video_loss"), "max_window_loss": w.get("max_video_loss"),
}))
PY
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2> /dev/null || true; done
  PIDS=()
done
python3 - "$OUT/cluster.jsonl" <<'PY' | tee "$OUT/cluster.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| nodes | classes per node | pupils ok | CPU % of core 0, per node | total CPU % | µs per packet | packets/s | loss (window, mean / max) |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    loss = "—" if r["window_loss"] is None else f"{100 * r['window_loss']:.2f}% / {100 * (r['max_window_loss'] or 0):.2f}%"
    print(f"| {r['nodes']} | {r['classes_per_node']} | {r['pupils_ok']}/{r['pupils']} | {r['node_cpu_pct']} | {r['total_cpu_pct']} "
          f"| {r['cpu_us_per_packet']} | {r['packets_per_s']} | {loss} |")
PY

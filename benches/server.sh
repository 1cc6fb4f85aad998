# Sourced by benches/browser_pupils.sh and benches/publisher_alone.sh: an Ardoise server for a
# measurement, and what is read off it.

# Start `$BIN serve` with benches/bench.toml, one media worker, pinned to the cores `$1`, its
# data in `$2`; sets SRV (its pid), BASE (its origin) and TOKEN (a teacher's for `demo`).
start_server() {
  local cpus=$1 data=$2
  mkdir -p "$data"
  : > "$data/serve.out"
  ARDOISE__DATA__DIR=$data ARDOISE__MEDIA__WORKERS=1 ARDOISE_LOG=warn taskset -c "$cpus" "$BIN" serve \
    --config benches/bench.toml --http 127.0.0.1:0 --udp 127.0.0.1:0 > "$data/serve.out" 2> "$data/serve.err" &
  SRV=$!
  for _ in $(seq 300); do
    grep -q "listening on" "$data/serve.out" 2> /dev/null && break
    kill -0 "$SRV" 2> /dev/null || break
    sleep 0.1
  done
  BASE=$(sed -n 's/^ardoise: listening on \(http:[^ ]*\).*/\1/p' "$data/serve.out")
  if [ -z "$BASE" ]; then
    echo "ardoise did not start; its output:" >&2; cat "$data/serve.out" "$data/serve.err" >&2
    return 1
  fi
  TOKEN=$(ARDOISE__DATA__DIR=$data "$BIN" token --role teacher --class demo)
}

# The server's CPU so far, ns: the sum of its threads' schedstat (every thread alive now).
cpu_ns() { cat /proc/"$SRV"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }

# A counter of the server's `/metrics`, summed over its labels (workers).
counter() { curl -s "$BASE/metrics" | awk -v m="$1" 'index($0, m) == 1 && substr($0, length(m) + 1, 1) ~ /[{ ]/ {s += $NF} END {printf "%d", s}'; }

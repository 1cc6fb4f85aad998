#!/usr/bin/env bash
# The forwarding delay one cascade hop adds (issue 15): a class on its node (the origin)
# with PUPILS pupils on the top layer, and PUPILS more sent to an edge that relays the class;
# every frame's end-to-end delay (the teacher's capture time, carried in abs-capture-time,
# to its first packet at the pupil) at the origin's pupils and at the edge's, over SECS
# seconds. Three `ardoise serve` nodes of the release build on loopback, a private
# PostgreSQL (Debian's) unless DATABASE_URL is set. The test `cascade_hop_delay` in
# tests/cascade.rs does the run.
#
#   benches/cascade.sh
#   PUPILS=20 SECS=60 benches/cascade.sh
#
# Must run as root without DATABASE_URL (PostgreSQL's initdb and pg_ctl run as the postgres
# user). Result: target/bench/cascade.jsonl (one JSON line per run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PUPILS=${PUPILS:-10} SECS=${SECS:-30}
mkdir -p target/bench
cargo test --release -q --test cascade -- --ignored --exact cascade_hop_delay --nocapture 2>&1 \
  | tee target/bench/cascade.log | sed -n 's/^CASCADE //p' | tee -a target/bench/cascade.jsonl

# Ardoise — the two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test lint deps browser-deps build bench clean

CARGO ?= cargo

deps:
	@scripts/install-deps.sh

browser-deps: deps
	@cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

build: deps
	$(CARGO) build --release

## Start the server and a studio on test sources publishing the demo class (embedded default config).
run: deps
	$(CARGO) run --release -- demo

## The gates the code must pass: formatting and clippy with warnings as errors.
lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Run every test (unit, simulated-time, end-to-end, real browser), after the lint gates.
test: browser-deps lint
	$(CARGO) test --workspace --no-fail-fast

## Benchmarks: criterion micro-benches, then 1 teacher → 50…800 pupils on Ardoise and on Janus VideoRoom
## side by side (benches/bench.sh; installs janus when root), then 20 classes × 25 adaptive pupils and
## one class of 25 on both (benches/classes.sh), then one class of 25 real Chromium pupils against 25
## browser-like loadgen pupils (benches/browser_pupils.sh); results go to benches/RESULTS.md by hand.
bench: deps
	$(CARGO) bench --bench forwarding
	benches/bench.sh
	benches/classes.sh
	benches/browser_pupils.sh
	benches/logins.sh

clean:
	$(CARGO) clean

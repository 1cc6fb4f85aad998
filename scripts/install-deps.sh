#!/usr/bin/env bash
# Install the Debian packages Ardoise needs to build, run and test.
# As root: installs what is missing. Otherwise: prints the apt-get line to run.
set -euo pipefail

packages=(
  # build: opus (bundled libopus) needs cmake; -sys crates need pkg-config and a C compiler
  build-essential cmake pkg-config
  # the studio: GStreamer (no plugins-bad dev package: it pulls OpenCV)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-tools gstreamer1.0-alsa
  gstreamer1.0-pulseaudio gstreamer1.0-x
  # the recorder's H.264 programmes: h264parse (the plugins only, not their dev package)
  gstreamer1.0-plugins-bad
  # end-to-end tests: a real browser, node for playwright-core, network namespaces
  chromium nodejs npm iproute2 util-linux nftables
  # a second browser engine (WebDriver BiDi through puppeteer-core)
  firefox-esr
  # TURN beside Ardoise ([turn] mode = "coturn") and its test client; openssl for a reference HMAC
  coturn openssl
  # the store's suite runs on a private PostgreSQL cluster (initdb, pg_ctl) when $DATABASE_URL is unset
  postgresql
  # the side-by-side benchmark (make bench) and its test: Janus VideoRoom
  janus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The machine may ship node/npm outside Debian's packages: accept those.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup, 1.92 or newer) first." >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing packages. Run as root:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

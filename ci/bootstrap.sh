#!/usr/bin/env bash
# Installs the Debian packages bitparity needs, only those missing.
# Idempotent; runs `apt-get update` only when something must be installed.
set -euo pipefail

packages=(cmake make gcc g++ pkg-config git libgtest-dev zlib1g-dev libyaml-dev libpcre2-dev
          nettle-dev libdeflate-dev
          python3 python3-numpy python3-yaml python3-venv python3-setuptools python3-wheel python3-torch
          python3-jsonschema
          clang libclang-rt-14-dev valgrind
          libblas3 liblapack3 libopenblas0-pthread
          chromium)
# nettle: SHA-256 (SHA-NI where the CPU has it); libdeflate: CRC-32 (PCLMUL) of NPZ members.
# Both BLAS builds on purpose: ci/test.sh runs the Python reference on each (ci/with-blas.sh).
# chromium: tests/cli/report_screenshots.sh renders the HTML reports headless and checks the screenshots.

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

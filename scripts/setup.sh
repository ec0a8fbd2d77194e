#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (root): system packages, a virtual
# environment, the project. A quick no-op when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# libatomic1: the Ableton Link wheel (LinkPython-extern, the link and test extras) links it.
# iproute2: `./dev test` brings up loopback in the tests' own network namespace.
APT_PACKAGES=(libfluidsynth3 libportaudio2 jackd2 timgm6mb-soundfont fluidsynth jack-midi-clock tmux rt-tests python3-venv libatomic1 opus-tools iproute2)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the project's metadata changed since the last install.
stamp="$VENV/.livegen-installed-$EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing livegen[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  touch "$stamp"
fi

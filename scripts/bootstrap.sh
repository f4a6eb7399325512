#!/usr/bin/env bash
# Prepare everything EchoMesh needs on Debian 12: the native audio libraries
# (installed with apt-get when missing and we are root) and .venv with the
# locked Python dependencies. Safe to run again; it only does what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$here/.venv}"

say() { printf 'echomesh setup: %s\n' "$*" >&2; }

# --- Python itself -----------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no '$PYTHON' on PATH; EchoMesh needs Python 3.11 or newer."
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$("$PYTHON" --version 2>&1) is too old; EchoMesh needs Python 3.11 or newer."
    exit 1
fi

# --- Native libraries (libopus for the codec, PortAudio for sound devices) -----
# Not grep -q: with pipefail, grep leaving early makes ldconfig die of SIGPIPE, and a library
# that is there would count as missing.
have_lib() { ldconfig -p 2>/dev/null | grep "$1" >/dev/null; }
missing=()
have_lib 'libopus\.so\.0' || missing+=(libopus0)
have_lib 'libportaudio\.so\.2' || missing+=(libportaudio2)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        say "missing native libraries: ${missing[*]}"
        say "install them with:  sudo apt-get install ${missing[*]}"
        exit 1
    fi
fi

# --- tmux: the TUI's terminal test (tests/tui/test_tmux.py) runs echomesh-tui in it -----
if ! command -v tmux >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing tmux with apt-get (for the terminal test of echomesh-tui)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq tmux >/dev/null
    else
        say "tmux is missing: the terminal test of echomesh-tui will fail without it."
        say "install it with:  sudo apt-get install tmux"
    fi
fi

# --- The virtual environment ---------------------------------------------------
stamp="$VENV/.echomesh-installed"
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        say "Python's venv module is missing."
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        else
            say "install it with:  sudo apt-get install python3-venv"
            exit 1
        fi
    fi
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Development installs everything (requirements-dev.lock: the runtime, tests, linters and
# benchmarks, exact versions with hashes); a server-only host needs just
# requirements-server.lock (README, "Installing").
lock=requirements-dev.lock
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing locked dependencies ($lock) into $VENV"
    # --no-deps: the lock is complete; pyrnnoise declares dependencies that the locks leave
    # out on purpose (scripts/lock-overrides.txt), which pip would otherwise go looking for.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r "$lock"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    touch "$stamp"
fi

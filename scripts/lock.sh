#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml with uv (`make lock`): exact versions and
# sha256 hashes, for Python 3.11 on Linux. Versions already in a lock file are kept when the
# ranges allow (uv reads the existing output as preferences); delete a file to re-resolve it.
#   requirements-server.lock  what a server-only host installs (echomesh-serve)
#   requirements.lock         the client and the TUI as well (the runtime of everything)
#   requirements-dev.lock     the runtime plus tests, linters and benchmarks (what make installs)
# The server and dev locks are constrained by requirements.lock, so no two disagree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV="${UV:-.venv/bin/uv}"
common=(--python-version 3.11 --python-platform linux --generate-hashes --quiet
        --custom-compile-command "make lock" --override scripts/lock-overrides.txt)
"$UV" pip compile pyproject.toml "${common[@]}" --extra client --extra tui -o requirements.lock
"$UV" pip compile pyproject.toml "${common[@]}" -c requirements.lock -o requirements-server.lock
"$UV" pip compile pyproject.toml "${common[@]}" --extra client --extra tui --extra dev \
    -c requirements.lock -o requirements-dev.lock

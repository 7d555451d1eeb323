#!/usr/bin/env bash
# Print the path of a Python interpreter >= 3.12 (needed by the LSST middleware
# and lsst-images); exit 1 with a clear message when there is none.
# Order: $PYTHON, python3.12/python3.13 on PATH, pyenv installs, common prefixes.
set -u
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for v in 3.12 3.13 3.14; do
    command -v "python$v" >/dev/null 2>&1 && candidates+=("$(command -v python$v)")
done
for root in "${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv /opt/pyenv; do
    [ -n "$root" ] && [ -d "$root/versions" ] || continue
    for p in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do candidates+=("$p"); done
done
for p in /usr/local/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.13 /usr/bin/python3.13 \
         /opt/homebrew/bin/python3.12 /opt/homebrew/bin/python3.13; do candidates+=("$p"); done
command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")
for c in "${candidates[@]}"; do
    if [ -x "$c" ] && ok "$c"; then echo "$c"; exit 0; fi
done
echo "error: rbnodia needs Python >= 3.12 (the LSST middleware and lsst-images require it)." >&2
echo "       None was found on PATH or under pyenv. Install one, e.g. 'pyenv install 3.12'," >&2
echo "       or point PYTHON=/path/to/python3.12 at it." >&2
exit 1

# Sourced by scripts/demo and scripts/test: make .venv (Python >= 3.11) and install the
# project into it with the extras named in $RECSVC_EXTRAS. Reinstalls only when
# pyproject.toml changes. Needs nothing but Python 3.11+ with venv, and a C compiler.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${RECSVC_VENV:-$root/.venv}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "recsvc needs Python 3.11 or newer; '$python' is $("$python" --version 2>&1)." >&2
    echo "Point PYTHON at one, e.g. PYTHON=python3.11 $0" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.recsvc-$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-${RECSVC_EXTRAS//,/-}"
if [ ! -f "$stamp" ]; then
    echo "installing recsvc[$RECSVC_EXTRAS] into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$RECSVC_EXTRAS]"
    rm -f "$venv"/.recsvc-* && touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"

# Sourced by scripts/demo and scripts/test, run by the Dockerfile: make a virtual environment
# (Python >= 3.11; $RECSVC_VENV, default .venv) and install the project into it with the
# extras named in $RECSVC_EXTRAS (comma-separated; empty for the service alone). Editable
# unless RECSVC_EDITABLE=0 (the images: the venv must not point back at the source tree).
# Reinstalls only when pyproject.toml changes. Needs nothing but Python 3.11+ with venv, and
# a C compiler.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${RECSVC_VENV:-$root/.venv}"
extras="${RECSVC_EXTRAS-}"
editable="${RECSVC_EDITABLE:-1}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "recsvc needs Python 3.11 or newer; '$python' is $("$python" --version 2>&1)." >&2
    echo "Point PYTHON at one, e.g. PYTHON=python3.11 $0" >&2
    exit 1
fi
case "$editable" in
    1) install=(-e) ;;
    0) install=() ;;
    *) echo "RECSVC_EDITABLE must be 1 or 0, not '$editable'" >&2; exit 1 ;;
esac
if [ -n "$extras" ]; then
    install+=("$root[$extras]")
else
    install+=("$root")
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.recsvc-$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-${extras//,/-}"
if [ "$editable" = 0 ]; then
    stamp="$stamp-installed"
fi
if [ ! -f "$stamp" ]; then
    echo "installing recsvc${extras:+[$extras]} into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${install[@]}"
    rm -f "$venv"/.recsvc-* && touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"

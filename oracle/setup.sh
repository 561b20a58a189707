#!/usr/bin/env bash
# Creates (or reuses) the oracle's Python environment and prints the path of its python.
# The venv lives in an ignored folder of the checkout (MECHLENS_ORACLE_VENV overrides it) and is
# rebuilt whenever oracle/requirements.txt or oracle/requirements-sae.txt (SAELens, for
# gen_saes.py; it shares every pin of requirements.txt) changes. torch is installed first and pinned: the
# machine holds the 2.13.0 CPU wheel, and anything unpinned would pull a multi-GB CUDA build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${MECHLENS_ORACLE_VENV:-$root/.venv-oracle}
req=$root/oracle/requirements.txt
req_sae=$root/oracle/requirements-sae.txt
stamp=$venv/.requirements.sha256
want=$(cat "$req" "$req_sae" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  command -v python3 >/dev/null || { echo "oracle: python3 is not installed (Python 3.11 with venv is needed to run TransformerLens)" >&2; exit 3; }
  echo "oracle: creating $venv from oracle/requirements.txt and requirements-sae.txt" >&2
  python3 -m venv "$venv" >&2
  quiet() { "$@" 2>&1 | grep -vE "^WARNING: Location '.*' is ignored" >&2 || true; return "${PIPESTATUS[0]}"; }
  quiet "$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0
  quiet "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" -r "$req_sae"
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"

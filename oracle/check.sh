#!/usr/bin/env bash
# Proves that the committed oracle fixtures are TransformerLens's own output: sets up the oracle
# venv (oracle/setup.sh), regenerates every fixture into a temporary folder with
# oracle/regenerate.py and compares it with test/fixtures at atol 1e-6 (oracle/compare.py).
# Exits non-zero on any difference, listing each one. On success it records a stamp of what it
# checked (.oracle-check.ok, ignored by git) so that `npm test` need not regenerate again until
# the oracle or the fixtures change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s)
py=$(bash "$root/oracle/setup.sh")
t1=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mechlens-oracle-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$py" -W ignore "$root/oracle/regenerate.py" --out "$tmp/fixtures" 2> >(grep -v "already cached" >&2)
"$py" "$root/oracle/compare.py" "$root/test/fixtures" "$tmp/fixtures" --atol 1e-6
t2=$(date +%s)
node "$root/scripts/oracle-check.mjs" --stamp
echo "oracle: fixtures are TransformerLens's (venv $((t1 - t0)) s, regenerate + compare $((t2 - t1)) s)" >&2

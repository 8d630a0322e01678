#!/usr/bin/env bash
# Configures and builds hafab into ./build (ccache, Ninja). Arguments are target names
# (`scripts/build.sh hafab kvd`); none builds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Lets ccache cache files built with precompiled headers.
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
werror=OFF; [ "${CI:-}" = "true" ] && werror=ON
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DHAFAB_WERROR=$werror >/dev/null
fi
targets=()
if [ $# -gt 0 ]; then targets=(--target "$@"); fi
cmake --build build -j"$(nproc)" "${targets[@]}"

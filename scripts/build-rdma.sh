#!/usr/bin/env bash
# Builds the optional RDMA shim (native/ -> native/build/lib/libobjget_rdma.so) with cmake-js.
#
# Backend "sdk" when NVIDIA's cuobjclient.h is found (CUOBJ_HOME, then CUDA_HOME / CUDA_PATH),
# else "simulator" (the project's simulated libcuobjclient, for tests); OBJGET_RDMA_SIM=1 forces
# the simulator. The simulator build also runs the C ABI test. Without cmake or a C/C++ compiler
# it says so and exits 0: RDMA is optional and simply stays unavailable.
#
# The installed package carries this script and native/'s sources: on a GPU host,
# `npx objget-build-rdma` (the package's bin, a link to this file) builds the shim into
# <package>/native/build/lib, where the addon looks for it. cmake-js is a devDependency: an
# installed package uses cmake directly.
set -euo pipefail

# Through the bin link, BASH_SOURCE is node_modules/.bin/objget-build-rdma: follow it.
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
native="$root/native"
out="$native/build"

unavailable() {
  echo "build-rdma: $1 not found; RDMA stays unavailable (libobjget_rdma.so not built)"
  exit 0
}
command -v cmake >/dev/null 2>&1 || unavailable "cmake"
if [[ -n "${CXX:-}" ]]; then
  command -v "${CXX%% *}" >/dev/null 2>&1 || unavailable "C++ compiler \$CXX=$CXX"
else
  command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 ||
    command -v clang++ >/dev/null 2>&1 || unavailable "C++ compiler (c++, g++ or clang++)"
fi
if [[ -n "${CC:-}" ]]; then
  command -v "${CC%% *}" >/dev/null 2>&1 || unavailable "C compiler \$CC=$CC"
else
  command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 ||
    command -v clang >/dev/null 2>&1 || unavailable "C compiler (cc, gcc or clang)"
fi

case "${OBJGET_RDMA_SIM:-0}" in
  1 | ON | on | true | yes) sim=ON ;;
  *) sim=OFF ;;
esac
jobs=$(nproc 2>/dev/null || echo 2)

cmake_js="$root/node_modules/.bin/cmake-js"
use_cmake_js=0
if [[ -x "$cmake_js" ]] && command -v node >/dev/null 2>&1; then
  use_cmake_js=1
  # cmake-js wants Node headers even for targets that do not use them, and downloads them from
  # nodejs.org unless $npm_config_nodedir/include/node/node.h exists. Point it at the installed
  # headers (npm's nodedir, or the prefix node runs from) or, failing those, at an empty stub:
  # nothing here is a Node addon, and nothing is ever downloaded.
  nodedir="${npm_config_nodedir:-}"
  if [[ -z "$nodedir" || ! -f "$nodedir/include/node/node.h" ]]; then
    nodedir=$(dirname "$(dirname "$(command -v node)")")
  fi
  if [[ ! -f "$nodedir/include/node/node.h" ]]; then
    nodedir="$out/.node-headers-stub"
    mkdir -p "$nodedir/include/node"
    echo "/* stub: the RDMA shim is not a Node addon */" >"$nodedir/include/node/node.h"
  fi
  export npm_config_nodedir="$nodedir"
  cmake_js_args=(--directory "$native" --out "$out" --CDOBJGET_RDMA_SIM="$sim")
else
  echo "build-rdma: no cmake-js (a devDependency, absent from an installed package); using cmake directly"
fi

# Configure every time (cmake-js build alone configures only a fresh directory), so a changed
# OBJGET_RDMA_SIM / CUOBJ_HOME / CUDA_HOME is always honoured.
configure() {
  if ((use_cmake_js)); then
    "$cmake_js" configure "${cmake_js_args[@]}"
  else
    cmake -S "$native" -B "$out" -DCMAKE_BUILD_TYPE=Release -DOBJGET_RDMA_SIM="$sim"
  fi
}
build() {
  if ((use_cmake_js)); then
    "$cmake_js" build "${cmake_js_args[@]}" --parallel "$jobs"
  else
    cmake --build "$out" --parallel "$jobs"
  fi
}

if ! configure; then
  # A cache written by another generator or for another source path cannot be reused.
  [[ -f "$out/CMakeCache.txt" ]] || exit 1
  echo "build-rdma: configure failed; retrying without the old CMake cache"
  rm -rf "$out/CMakeCache.txt" "$out/CMakeFiles"
  configure
fi
build

lib="$out/lib"
info="$lib/rdma-build.json"
[[ -f "$lib/libobjget_rdma.so" && -f "$info" ]] || {
  echo "build-rdma: build finished without $lib/libobjget_rdma.so" >&2
  exit 1
}
backend=$(sed -n 's/.*"backend":"\([a-z]*\)".*/\1/p' "$info")

if [[ "$backend" == "simulator" ]]; then
  (cd "$out" && ctest --output-on-failure) || {
    echo "build-rdma: the shim's ABI test failed against the simulator" >&2
    exit 1
  }
fi

echo "build-rdma: built the $backend backend: $lib/libobjget_rdma.so"
echo "build-rdma: $(cat "$info")"

#!/usr/bin/env bash
# Build the test-only objget_vm addon (binding.gyp, native/vm/vm.cc) into
# build/Release/objget_vm.node with node-gyp, offline: the Node headers come from the local
# installation (npm_config_nodedir, else the prefix of the running node), never from nodejs.org.
# Without a C++ compiler, make, python3 or the Node headers it says so on one line and exits 0
# (the RDMA gateway then refuses to start and says to run this).
set -euo pipefail
cd "$(dirname "$0")/.."

cxx=${CXX:-c++}
if ! command -v "$cxx" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
  ! command -v clang++ >/dev/null 2>&1; then
  echo "build-vm: no C++ compiler found (set CXX or install g++); objget_vm not built"
  exit 0
fi
if ! command -v make >/dev/null 2>&1; then
  echo "build-vm: make not found (node-gyp needs it); objget_vm not built"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "build-vm: python3 not found (node-gyp needs it); objget_vm not built"
  exit 0
fi

nodedir=${npm_config_nodedir:-}
if [[ -z "$nodedir" ]]; then
  nodedir=$(dirname "$(dirname "$(command -v node)")")
fi
if [[ ! -f "$nodedir/include/node/node_api.h" ]]; then
  echo "build-vm: no Node headers under $nodedir/include/node (set npm_config_nodedir to a Node install with headers); objget_vm not built"
  exit 0
fi

gyp=node_modules/.bin/node-gyp
[[ -x "$gyp" ]] || gyp="npx --no-install node-gyp"
$gyp rebuild --nodedir="$nodedir" --jobs=max --loglevel=warn
echo "build-vm: built build/Release/objget_vm.node"

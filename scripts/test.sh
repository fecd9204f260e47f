#!/usr/bin/env bash
# The whole test suite: builds the addon and the TypeScript, installs the test servers (cached),
# runs the Rust tests, then the vitest suites (which start MinIO, fake-gcs-server, Azurite and
# the HTTP(S) fixture on 127.0.0.1 and stop them afterwards). Nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

logs=$(mktemp -d)
bash scripts/check-deps.sh
npm run build
# The RDMA shim against the simulated libcuobjclient (cmake-js) and the test gateway's
# process_vm addon (node-gyp): the RDMA tests fail, never skip, when either is missing.
OBJGET_RDMA_SIM=1 npm run build:rdma
npm run build:vm
bash scripts/install-servers.sh

# The Rust tests must not see a developer's own cloud credentials.
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
  AWS_EC2_METADATA_DISABLED=true OBJGET_METADATA=off \
  cargo test --workspace --locked 2>&1 | tee "$logs/cargo.txt"

npx vitest run --reporter=default --reporter=json --outputFile="$logs/vitest.json" "$@"

# Proven by installing: the packed packages installed from a local registry with no Rust on PATH
# (builds the linux-x64-gnu binary with zig first; cached under $OBJGET_CACHE).
bash scripts/test-package.sh --reporter=default --reporter=json --outputFile="$logs/package.json"

node -e '
const fs = require("fs");
const cargo = fs.readFileSync(process.argv[1], "utf8");
let passed = 0, failed = 0, skipped = 0;
for (const m of cargo.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
  passed += +m[1]; failed += +m[2]; skipped += +m[3];
}
let total = 0;
for (const file of process.argv.slice(2)) {
  const v = JSON.parse(fs.readFileSync(file, "utf8"));
  passed += v.numPassedTests; failed += v.numFailedTests;
  skipped += v.numPendingTests + v.numTodoTests;
  total += v.numTotalTests;
}
console.log(`rust ${cargo.match(/test result/g)?.length ?? 0} suites, vitest ${total} tests (package test included)`);
console.log(`total: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed || skipped) process.exit(1);
' "$logs/cargo.txt" "$logs/vitest.json" "$logs/package.json"

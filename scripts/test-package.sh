#!/usr/bin/env bash
# npm run test:package: proven by installing. Builds the TypeScript and the linux-x64-gnu binary
# (zig, glibc 2.17: scripts/build-linux.sh), then test/package.test.ts packs the main and the
# platform package, installs them from a local registry into empty projects with no Rust on PATH,
# and checks them there (Node ESM + CJS, the types, MinIO round trips, Bun and Deno, the package
# without its platform package, the glibc limit). Arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
export OBJGET_CACHE="${OBJGET_CACHE:-$HOME/.cache/objget}"
npm run build:ts
bash scripts/build-linux.sh x86_64-unknown-linux-gnu
bash scripts/install-servers.sh
npx vitest run --config vitest.package.config.ts "$@"

#!/usr/bin/env bash
# The Rust build uses rustls with ring only: no aws-lc-sys, no aws-lc-rs, no cmake crate.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in aws-lc-sys aws-lc-rs cmake; do
  out=$(cargo tree --workspace --locked --target all -i "$crate" 2>&1 || true)
  if grep -q "did not match any packages" <<<"$out"; then
    echo "check-deps: $crate absent"
  else
    echo "check-deps: forbidden crate $crate is in the dependency tree:" >&2
    echo "$out" >&2
    status=1
  fi
done
exit $status

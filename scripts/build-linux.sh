#!/usr/bin/env bash
# Builds the Linux platform packages' binaries with zig (cargo-zigbuild through `napi build -x`):
#   x86_64-unknown-linux-gnu   → npm/linux-x64-gnu/objget.linux-x64-gnu.node    (glibc ≥ 2.17)
#   aarch64-unknown-linux-gnu  → npm/linux-arm64-gnu/objget.linux-arm64-gnu.node (glibc ≥ 2.17)
#   x86_64-unknown-linux-musl  → npm/linux-x64-musl/objget.linux-x64-musl.node
#   aarch64-unknown-linux-musl → npm/linux-arm64-musl/objget.linux-arm64-musl.node
# then checks each with scripts/check-glibc.mjs. Arguments pick targets (default: all four).
#
# zig and cargo-zigbuild come from PyPI into a venv under $OBJGET_CACHE (cached, like the Rust
# target dir): nothing else is downloaded. The gnu targets are pinned to glibc 2.17 with
# cargo-zigbuild's `<triple>.2.17` spelling; napi adds `-C target-feature=-crt-static` for musl
# (a cdylib must link musl dynamically, as Node itself does on Alpine).
#
# Each target builds in its own $CARGO_TARGET_DIR/zig/<triple> (cached with the rest): for
# x86_64-unknown-linux-gnu the target is the host, so zig also links the build scripts and proc
# macros, and sharing one directory with `npm run build` (or with the other targets) made each
# build throw the other's host artifacts away and recompile everything (measured: 130 crates,
# 5.5 min, after every zig build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
GLIBC=2.17

cache="${OBJGET_CACHE:-$HOME/.cache/objget}"
venv="$cache/zig-venv"
stamp="$venv/.objget-versions"
want="cargo-zigbuild==$ZIGBUILD_VERSION ziglang==$ZIGLANG_VERSION"
if [[ ! -x "$venv/bin/cargo-zigbuild" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "build-linux: installing $want from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
  echo "$want" >"$stamp"
fi
export PATH="$venv/bin:$PATH"
# cargo-zigbuild runs `python -m ziglang` when no `zig` is on PATH: name the venv's python, and
# keep zig's own cache (compiled libc stubs) with the rest.
export CARGO_ZIGBUILD_PYTHON_PATH="$venv/bin/python"
export ZIG_GLOBAL_CACHE_DIR="$cache/zig-cache"
export CARGO_ZIGBUILD_CACHE_DIR="$cache/zig-cache/cargo-zigbuild"

targets=("$@")
((${#targets[@]})) || targets=(
  x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
  x86_64-unknown-linux-musl aarch64-unknown-linux-musl
)

installed=$(rustup target list --installed 2>/dev/null || true)
outs=()
for t in "${targets[@]}"; do
  case "$t" in
    x86_64-unknown-linux-gnu) dir=linux-x64-gnu spec="$t.$GLIBC" ;;
    aarch64-unknown-linux-gnu) dir=linux-arm64-gnu spec="$t.$GLIBC" ;;
    x86_64-unknown-linux-musl) dir=linux-x64-musl spec="$t" ;;
    aarch64-unknown-linux-musl) dir=linux-arm64-musl spec="$t" ;;
    *)
      echo "build-linux: unknown target $t" >&2
      exit 2
      ;;
  esac
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
  # napi writes its typings and loader beside the binary: build into a scratch dir, keep the
  # .node only (index.cjs / index.d.ts come from `npm run build`).
  scratch=$(mktemp -d)
  started=$SECONDS
  npx napi build --platform --release --cross-compile --target "$spec" \
    --target-dir "${CARGO_TARGET_DIR:-$root/target}/zig/$t" \
    --manifest-path crates/node/Cargo.toml --package-json-path package.json \
    --output-dir "$scratch" --no-js
  node=objget.$dir.node
  cp "$scratch/$node" "npm/$dir/$node"
  rm -rf "$scratch"
  echo "build-linux: npm/$dir/$node ($t) in $((SECONDS - started)) s"
  outs+=("npm/$dir/$node")
done

node scripts/check-glibc.mjs "${outs[@]}"

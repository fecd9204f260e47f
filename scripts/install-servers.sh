#!/usr/bin/env bash
# Build the test servers that come from the Go module proxy into a cache outside the clone, once.
# Pinned versions; a second run with the same pins does nothing. Azurite comes from npm.
set -euo pipefail

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c" # the last commit of the archived minio/minio
FAKE_GCS_VERSION="v1.55.1"

CACHE="${OBJGET_CACHE:-$HOME/.cache/objget}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

if ! command -v go >/dev/null 2>&1; then
  echo "install-servers: Go is needed to build MinIO and fake-gcs-server (https://go.dev/dl)" >&2
  exit 1
fi

install() { # name module version
  local name=$1 module=$2 version=$3
  local stamp="$BIN/.$name.version"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
    echo "install-servers: $name $version already built"
    return
  fi
  echo "install-servers: building $name $version (first time only; a few minutes)"
  GOBIN="$BIN" GOFLAGS=-trimpath go install "$module@$version"
  echo "$version" >"$stamp"
}

install minio github.com/minio/minio "$MINIO_VERSION" &
p1=$!
install fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" &
p2=$!
wait $p1
wait $p2

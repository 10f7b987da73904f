#!/usr/bin/env bash
# setup-system.sh: make sure the Debian packages consentflow's commands need
# are installed. `make test`, `make demo` and `make demo-auto` call it (through
# `make setup`), and so does .ci/run, so a user and CI run the same steps.
#
# Usage: scripts/setup-system.sh NEED...
#   NEED is any of: java (DynamoDB Local), node (npm tools), chromium (browser
#   tests, demo-auto), qemu (the arm64 Lambda binary test), ci (what .ci/run
#   needs besides: unshare, ip, make, git).
#
# What is missing is installed with apt-get when running as root or with
# passwordless sudo, each package announced on one line. Otherwise it prints
# one line per package naming it and the command to install it, and exits 0:
# the tests that need the package then fail with the same advice.
# CONSENTFLOW_NO_INSTALL=1 never installs (only reports).
set -euo pipefail

declare -A pkg_of=(
  [java]=openjdk-17-jre-headless
  [node]="nodejs npm"
  [chromium]=chromium
  [qemu]=qemu-user-static
  [unshare]=util-linux
  [ip]=iproute2
  [make]=make
  [git]=git
)
# The command whose presence proves a need is met.
declare -A cmd_of=(
  [java]=java [node]=npm [chromium]=chromium [qemu]=qemu-aarch64-static
  [unshare]=unshare [ip]=ip [make]=make [git]=git
)

needs=()
for n in "$@"; do
  case "$n" in
    ci) needs+=(unshare ip make git) ;;
    java | node | chromium | qemu) needs+=("$n") ;;
    *) echo "setup-system: unknown need '$n' (java, node, chromium, qemu, ci)" >&2; exit 2 ;;
  esac
done

# Chromium and qemu are found where the tests look for them (their override
# variables win), the rest on PATH.
present() {
  case "$1" in
    chromium) [[ -n "${CONSENTFLOW_CHROMIUM:-}" && -x "${CONSENTFLOW_CHROMIUM}" ]] || command -v chromium >/dev/null 2>&1 ;;
    qemu) [[ -n "${CONSENTFLOW_QEMU:-}" && -x "${CONSENTFLOW_QEMU}" ]] || command -v qemu-aarch64-static >/dev/null 2>&1 ;;
    *) command -v "${cmd_of[$1]}" >/dev/null 2>&1 ;;
  esac
}

missing=()
for n in "${needs[@]}"; do
  present "$n" || missing+=("$n")
done
((${#missing[@]})) || exit 0

sudo=()
if [[ "${CONSENTFLOW_NO_INSTALL:-}" == 1 ]] || ! command -v apt-get >/dev/null 2>&1; then
  can=no
elif [[ $(id -u) == 0 ]]; then
  can=yes
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  can=yes sudo=(sudo -n)
else
  can=no
fi

pkgs=()
for n in "${missing[@]}"; do
  # shellcheck disable=SC2206
  pkgs+=(${pkg_of[$n]})
done

if [[ $can == no ]]; then
  for n in "${missing[@]}"; do
    echo "==> setup: MISSING ${cmd_of[$n]}: install it with: sudo apt-get install ${pkg_of[$n]} (the tests that need it will fail until then)" >&2
  done
  exit 0
fi

for n in "${missing[@]}"; do
  echo "==> setup: installing ${pkg_of[$n]} (for ${cmd_of[$n]}) with apt-get"
done
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { echo "setup-system: ERROR: apt-get did not install $p" >&2; exit 1; }
done

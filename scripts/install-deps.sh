#!/usr/bin/env bash
# Installs the system packages a target needs, only those that are missing.
#   scripts/install-deps.sh run    -> what `make run` needs (a Python venv)
#   scripts/install-deps.sh test   -> plus the real peers the test suite drives
# Idempotent and quiet when everything is present; needs root (or sudo) only to install.
set -euo pipefail
profile=${1:-run}

run_pkgs=(python3-venv ca-certificates)
# `wavectl serve` builds the default Fusion layers (both architectures) at first start.
run_pkgs+=(patchelf gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# Real peers, not mocks: see DEVELOPERS.md "Real parts, not mocks".
test_pkgs=(
  docker.io docker-registry skopeo redis-server fuse3 s3fs rclone
  busybox-static apache2-utils patchelf nodejs npm
  wrk hyperfine fio qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc libc6-dev musl-tools
)

want=("${run_pkgs[@]}")
[ "$profile" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  # python3-venv: a non-Debian python3 (pyenv, deadsnakes) already ships venv + ensurepip.
  if [ "$p" = python3-venv ] && python3 -c 'import ensurepip, venv' 2>/dev/null; then continue; fi
  # nodejs/npm: any node >= 18 on PATH will do.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$profile" = test ]; then
  # s3rver: the fast S3 peer for large files and benchmarks (npm registry), kept in .tools/.
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -x "$here/.tools/node_modules/.bin/s3rver" ]; then
    echo "install-deps: installing s3rver into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$here/.tools" s3rver@3.7.1 >/dev/null
  fi
  # azurite: the Azure Blob emulator the fusion tests mount /fusion/az from (npm registry).
  if [ ! -x "$here/.tools/node_modules/.bin/azurite-blob" ]; then
    echo "install-deps: installing azurite into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$here/.tools" azurite@3.35.0 >/dev/null
  fi
fi

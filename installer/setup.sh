#!/usr/bin/env bash
# Sets up everything ReplicaDesk needs on Debian, idempotently:
#   1. Debian packages (compiler, pkg-config, liblz4/libxxhash headers for _fastblocks,
#      qemu-utils to check replicas, rsync for the benchmark). Installed when missing if we are
#      root; otherwise the apt-get line to run is printed and we stop.
#   2. A virtual environment in .venv with the project installed editable, test tools included.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
packages=(gcc pkg-config liblz4-dev libxxhash-dev qemu-utils rsync iproute2 golang-go golang-github-vmware-govmomi-dev)
if ! "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  packages+=(python3-dev)
fi
if ! "$PY" -m venv --help >/dev/null 2>&1; then
  packages+=(python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages. Run as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.replicadesk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ -n "$(find _fastblocks -name '*.pyx' -newer "$stamp" 2>/dev/null)" ]; then
  echo "setup: installing ReplicaDesk and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,console]'
  touch "$stamp"
fi
# Byte-compile our own modules: with PYTHONDONTWRITEBYTECODE set (it is on these machines) every
# `replicadesk` process would otherwise compile them again, 40 ms of each command's start-up.
.venv/bin/python -m compileall -q core gui >/dev/null
echo "setup: ready (.venv/bin/replicadesk)"

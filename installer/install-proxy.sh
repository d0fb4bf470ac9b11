#!/usr/bin/env bash
# Sets up a Linux proxy host: ReplicaDesk's data mover as a systemd service.
#
#   1. Installs ReplicaDesk into a virtual environment, <prefix>/venv (default /opt/replicadesk),
#      from this source tree or a wheel (--source). Only the engine: no Qt on a proxy.
#   2. Installs the TLS files issued on the backup server into <etc>/tls (default
#      /etc/replicadesk/tls) and checks them: the server certificate must be signed by the CA
#      and match its key. The backup server issues them from its own CA:
#        replicadesk mover certs /root/proxy-<name> --ca <backup server's CA dir> --name <host> ...
#      and they come here by scp (ca.pem, server.pem, server.key; the CA's key stays there).
#   3. Writes <etc>/mover.env (replica root, listen address, TLS files) and the unit
#      replicadesk-mover.service, then enables and starts it when systemd runs this machine;
#      otherwise it prints the command that runs the service.
#
# Idempotent: run it again to change a setting or to upgrade. As root, it installs missing
# Debian packages and creates the service's system user.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() {
  cat <<USAGE
usage: $0 --certs DIR [options]
  --certs DIR         ca.pem, server.pem and server.key issued on the backup server (required)
  --root DIR          folder holding the replicas (default /srv/replicadesk/replicas)
  --listen HOST:PORT  address the mover listens on (default 0.0.0.0:6160)
  --prefix DIR        where ReplicaDesk is installed (default /opt/replicadesk)
  --etc DIR           where mover.env and tls/ go (default /etc/replicadesk)
  --unit-dir DIR      where the unit goes (default /etc/systemd/system)
  --user NAME         the service's user (default replicadesk; created when missing)
  --source PATH       what to install: a source tree or a wheel (default: $(dirname "$here"))
  --python PYTHON     the interpreter of the venv (default python3; 3.11 or newer)
  --no-systemd        do not enable or start the unit; print how to run the service
USAGE
}

certs="" root=/srv/replicadesk/replicas listen=0.0.0.0:6160 prefix=/opt/replicadesk
etc=/etc/replicadesk unit_dir=/etc/systemd/system user=replicadesk source=$(dirname "$here")
python=python3 use_systemd=1
while (($#)); do
  case $1 in
    --certs) certs=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --etc) etc=$2; shift 2 ;;
    --unit-dir) unit_dir=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-proxy: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
die() { echo "install-proxy: $*" >&2; exit 1; }
[ -n "$certs" ] || { usage >&2; exit 2; }
for f in ca.pem server.pem server.key; do
  [ -f "$certs/$f" ] || die "$certs/$f is missing: issue it on the backup server with
  replicadesk mover certs DIR --ca <its CA dir> --name <this host's name or address>"
done
[[ $listen =~ ^.+:[0-9]+$ ]] || die "--listen $listen is not HOST:PORT"
# The environment file has one unquoted VALUE per line: keep paths free of what needs quoting.
for p in "$root" "$prefix" "$etc"; do
  [[ $p =~ ^/[A-Za-z0-9._/+@-]*$ ]] || die "$p must be an absolute path without spaces or quotes"
done
is_root=0; [ "$(id -u)" -eq 0 ] && is_root=1

# --- 1. Debian packages and the venv ------------------------------------------------------------
packages=(python3-venv)
if [ -d "$source" ]; then  # building from source compiles the _fastblocks extensions
  packages+=(gcc pkg-config liblz4-dev libxxhash-dev python3-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  ((is_root)) || die "missing Debian packages; run as root: apt-get install -y ${missing[*]}"
  echo "install-proxy: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
venv=$prefix/venv
if [ ! -x "$venv/bin/python" ]; then
  echo "install-proxy: creating $venv"
  mkdir -p "$prefix"
  "$python" -m venv "$venv"
fi
echo "install-proxy: installing ReplicaDesk from $source into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$source"
"$venv/bin/replicadesk" --version

# --- 2. the service's user and its TLS files ----------------------------------------------------
if ! id "$user" >/dev/null 2>&1; then
  ((is_root)) || die "user $user does not exist (run as root to create it, or give --user)"
  echo "install-proxy: creating the system user $user"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$user"
fi
group=$(id -gn "$user")
tls=$etc/tls
mkdir -p "$tls"
install -m 0644 "$certs/ca.pem" "$tls/ca.pem"
install -m 0644 "$certs/server.pem" "$tls/server.pem"
install -m 0640 "$certs/server.key" "$tls/server.key"
if ((is_root)); then chown "root:$group" "$tls/server.key"; fi
"$venv/bin/python" - "$tls" <<'PY'
"""The server certificate is signed by the CA, matches its key, and serves TLS."""
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

tls = Path(sys.argv[1])
ca = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
cert = x509.load_pem_x509_certificate((tls / "server.pem").read_bytes())
try:
    cert.verify_directly_issued_by(ca)
except (ValueError, TypeError, InvalidSignature) as e:
    sys.exit(f"install-proxy: server.pem is not signed by ca.pem ({e})")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
try:
    ctx.load_cert_chain(str(tls / "server.pem"), str(tls / "server.key"))
except ssl.SSLError as e:
    sys.exit(f"install-proxy: server.key does not match server.pem ({e})")
try:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    shown = ", ".join(str(getattr(n, "value", n)) for n in names)
except x509.ExtensionNotFound:
    sys.exit("install-proxy: server.pem names no host (no subjectAltName)")
until = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
print(f"install-proxy: certificate for {shown}, valid until {until:%Y-%m-%d}")
PY

# --- 3. replica root, environment file, unit ----------------------------------------------------
mkdir -p "$root"
if ((is_root)); then chown "$user:$group" "$root"; fi
env_file=$etc/mover.env
tmp=$(mktemp "$etc/.mover.env.XXXXXX")
cat >"$tmp" <<ENV
# Settings of replicadesk-mover.service (written by installer/install-proxy.sh; run it again to
# change them, or edit here and restart the service).
REPLICADESK_ROOT=$root
REPLICADESK_LISTEN=$listen
REPLICADESK_TLS_CERT=$tls/server.pem
REPLICADESK_TLS_KEY=$tls/server.key
REPLICADESK_TLS_CA=$tls/ca.pem
ENV
chmod 0644 "$tmp"
mv "$tmp" "$env_file"
mkdir -p "$unit_dir"
unit=$unit_dir/replicadesk-mover.service
sed -e "s|/opt/replicadesk/venv|$venv|g" \
    -e "s|^EnvironmentFile=/etc/replicadesk/mover.env|EnvironmentFile=$env_file|" \
    -e "s|^User=replicadesk|User=$user|" -e "s|^Group=replicadesk|Group=$group|" \
    "$here/proxy/replicadesk-mover.service" >"$unit"
chmod 0644 "$unit"
echo "install-proxy: wrote $env_file and $unit"

port=${listen##*:}
cat <<NEXT
install-proxy: on the backup server, register this proxy (its client certificate is the one made
with the CA, in the CA's folder):
  replicadesk proxy add <name> --address <this host> --port $port --site dr \\
    --tls-cert <CA dir>/client.pem --tls-key <CA dir>/client.key --tls-ca <CA dir>/ca.pem
NEXT
if ((use_systemd)) && [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now replicadesk-mover.service
  systemctl restart replicadesk-mover.service  # a second install picks up new settings
  systemctl --no-pager --lines=5 status replicadesk-mover.service || true
else
  if ! ((use_systemd)); then
    why="--no-systemd"
  elif [ "$unit_dir" != /etc/systemd/system ]; then
    why="the unit is not in /etc/systemd/system"
  else
    why="systemd does not run this machine"
  fi
  cat <<MANUAL
install-proxy: the service was not enabled ($why). With systemd:
  cp $unit /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now replicadesk-mover
Without it, run the mover as $user from your init system or a supervisor:
  set -a; . $env_file; set +a
  $venv/bin/replicadesk mover serve --root "\$REPLICADESK_ROOT" --listen "\$REPLICADESK_LISTEN" \\
    --tls-cert "\$REPLICADESK_TLS_CERT" --tls-key "\$REPLICADESK_TLS_KEY" --tls-ca "\$REPLICADESK_TLS_CA"
MANUAL
fi

#!/usr/bin/env bash
# Installs the console built by installer/build-console.sh as a desktop application:
#   <prefix>/lib/replicadesk-console/    the one-folder bundle (replaced as a whole)
#   <prefix>/bin/replicadesk-console     a link to its program
#   <prefix>/share/applications/replicadesk-console.desktop   the menu entry
#   <prefix>/share/icons/hicolor/{scalable,48x48,128x128,256x256}/apps/replicadesk.{svg,png}
# --prefix ~/.local for one user (the default), /usr/local for everyone (as root).
# --uninstall removes exactly these.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=$HOME/.local
uninstall=0
while (($#)); do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) echo "usage: $0 [--prefix DIR (default ~/.local)] [--uninstall]"; exit 0 ;;
    *) echo "install-console: unknown argument $1" >&2; exit 2 ;;
  esac
done
prefix=$(realpath -m "$prefix")
bundle=dist/replicadesk-console
lib=$prefix/lib/replicadesk-console
bin=$prefix/bin/replicadesk-console
desktop=$prefix/share/applications/replicadesk-console.desktop
icons=$prefix/share/icons/hicolor
icon_files=("$icons/scalable/apps/replicadesk.svg")
for size in 48 128 256; do icon_files+=("$icons/${size}x${size}/apps/replicadesk.png"); done

refresh_caches() {
  # Menus and icon themes notice new files sooner with these (when the desktop has them).
  if command -v update-desktop-database >/dev/null; then
    update-desktop-database -q "$prefix/share/applications" || true
  fi
  if command -v gtk-update-icon-cache >/dev/null && [ -f "$icons/index.theme" ]; then
    gtk-update-icon-cache -q -t "$icons" || true
  fi
}

if ((uninstall)); then
  rm -rf "$lib"
  rm -f "$bin" "$desktop" "${icon_files[@]}"
  refresh_caches
  echo "install-console: removed ReplicaDesk's console from $prefix"
  exit 0
fi

[ -x "$bundle/replicadesk-console" ] || {
  echo "install-console: no bundle in $bundle; build it first: installer/build-console.sh" >&2
  exit 1
}
mkdir -p "$prefix/lib" "$prefix/bin" "$prefix/share/applications"
# Copy beside, then swap: a console already running keeps its files until it exits.
rm -rf "$lib.new"
cp -a "$bundle" "$lib.new"
rm -rf "$lib.old"
if [ -d "$lib" ]; then mv "$lib" "$lib.old"; fi
mv "$lib.new" "$lib"
rm -rf "$lib.old"
ln -sfn "$lib/replicadesk-console" "$bin"
# The entry names the program by its full path: ~/.local/bin is not on every session's PATH.
sed -e "s|^Exec=replicadesk-console|Exec=$bin|" "$bundle/share/replicadesk-console.desktop" \
  >"$desktop"
chmod 0644 "$desktop"
install -D -m 0644 "$bundle/share/replicadesk.svg" "$icons/scalable/apps/replicadesk.svg"
for size in 48 128 256; do
  install -D -m 0644 "$bundle/share/replicadesk-$size.png" "$icons/${size}x${size}/apps/replicadesk.png"
done
refresh_caches
if command -v desktop-file-validate >/dev/null; then desktop-file-validate "$desktop"; fi
"$bin" --help >/dev/null
echo "install-console: installed in $prefix: run replicadesk-console (--lab for the built-in lab),"
echo "or pick ReplicaDesk in the desktop's menu"

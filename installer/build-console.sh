#!/usr/bin/env bash
# Builds the console as a desktop application: a PyInstaller one-folder bundle in
# dist/replicadesk-console/ (the program, Python, Qt and its plugins, the _fastblocks
# extensions and their libraries, the lab's Go launcher sources), plus the desktop entry and the
# icon (SVG, and PNGs rendered from it) in dist/replicadesk-console/share/.
# Then installer/install-console.sh --prefix ~/.local installs it.
#
# Uses .venv (installer/setup.sh makes it) with the `installer` extra (PyInstaller from PyPI).
# The bundle runs on machines with the same or a newer glibc than the build machine's.
set -euo pipefail
cd "$(dirname "$0")/.."

./installer/setup.sh
if ! .venv/bin/python -c 'import PyInstaller' 2>/dev/null; then
  echo "build-console: installing PyInstaller into .venv (the installer extra)"
  .venv/bin/python -m pip install -q -e '.[console,installer]'
fi
# The extensions must be built for this tree (setup.sh installs editable, which builds them).
.venv/bin/python -c 'import _fastblocks.digest, _fastblocks.lz4block'

echo "build-console: bundling (a few minutes)"
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller installer/console/replicadesk-console.spec

out=dist/replicadesk-console
share=$out/share
mkdir -p "$share"
cp installer/console/replicadesk-console.desktop "$share/"
cp installer/console/replicadesk.svg "$share/replicadesk.svg"
# PNG icons for desktops without SVG icon support, drawn from the SVG by Qt.
QT_QPA_PLATFORM=offscreen .venv/bin/python - "$share" <<'PY'
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

app = QGuiApplication([])
share = Path(sys.argv[1])
renderer = QSvgRenderer(str(share / "replicadesk.svg"))
if not renderer.isValid():
    sys.exit("build-console: the icon SVG does not render")
for size in (48, 128, 256):
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    if not image.save(str(share / f"replicadesk-{size}.png")):
        sys.exit(f"build-console: could not write the {size} px icon")
PY
"$out/replicadesk-console" --help >/dev/null
echo "build-console: built $out ($(du -sh "$out" | cut -f1)); install it with:"
echo "  installer/install-console.sh --prefix ~/.local"

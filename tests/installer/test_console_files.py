"""The console's desktop entry and icon (installer/console/), which build-console.sh bundles and
install-console.sh installs: keys a desktop needs, names that match what gets installed, an icon
that renders."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

CONSOLE = Path(__file__).resolve().parents[2] / "installer" / "console"


def test_desktop_entry_names_the_program_and_the_icon() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CONSOLE / "replicadesk-console.desktop").read_text())
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "ReplicaDesk"
    # install-console.sh swaps this Exec for the installed program's full path.
    assert entry["Exec"] == "replicadesk-console"
    assert entry["Icon"] == "replicadesk"  # replicadesk.svg / .png in the hicolor theme
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")


def test_icon_renders(qapp: QApplication) -> None:
    renderer = QSvgRenderer(str(CONSOLE / "replicadesk.svg"))
    assert renderer.isValid()
    image = QImage(64, 64, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    colours = {image.pixel(x, y) for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(colours) > 4

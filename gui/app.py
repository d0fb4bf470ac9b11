"""Starting the console: the QApplication (high-DPI, style, names), the store, the main window.

`replicadesk console` and the `replicadesk-console` entry point both end here. The store is
opened (and migrated) before the event loop starts, so no dialog waits on it; from then on only
workers and the store watcher touch the database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from core import __version__
from core.cli.context import default_db
from core.errors import ReplicaDeskError
from core.store.store import Store
from gui.gc_guard import GuiThreadCollector


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The application object (made once): fractional high-DPI scaling, the Fusion style (the
    same look on every platform, and in offscreen renders), the names settings are kept under;
    the cyclic garbage collector runs on the GUI thread only."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("ReplicaDesk")
    app.setApplicationDisplayName("ReplicaDesk")
    app.setOrganizationName("ReplicaDesk")
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")
    # Qt objects in reference cycles die on the GUI thread, never on a worker's (gui.gc_guard).
    app.setProperty("gc_guard", GuiThreadCollector(app))
    return app


def run_console(db: Path) -> int:
    """Open the console on the database at `db` and run until the window closes."""
    from gui.main_window import MainWindow

    app = create_app()
    store = Store.open(db)
    try:
        window = MainWindow(store)
        window.show()
        window.start()
        return app.exec()
    finally:
        store.close()


def console_command(
    db: Path | None, render: Path | None, vms: int, lab: bool = False, lab_dir: Path | None = None
) -> int:
    """What `replicadesk console` runs (its arguments are parsed by core's CLI)."""
    if render is not None:
        from gui.render import render_views

        for path in render_views(render, vms=vms):
            print(path)
        return 0
    from gui.lab_console import require_display, run_lab_console

    if lab:
        return run_lab_console(lab_dir, vms)
    require_display()
    return run_console((db or default_db()).expanduser())


def main(argv: Sequence[str] | None = None) -> int:
    """The `replicadesk-console` entry point."""
    parser = argparse.ArgumentParser(prog="replicadesk-console", description=__doc__)
    parser.add_argument(
        "--db", type=Path, default=None, help=f"the database (default {default_db()})"
    )
    parser.add_argument("--render", type=Path, metavar="DIR", help="render every view to DIR")
    parser.add_argument(
        "--lab", action="store_true", help="start the built-in lab and open the console on it"
    )
    parser.add_argument("--dir", type=Path, help="with --lab: keep its database in DIR")
    parser.add_argument("--vms", type=int, default=12, help="VMs in the lab --lab/--render starts")
    args = parser.parse_args(argv)
    try:
        return console_command(args.db, args.render, args.vms, args.lab, args.dir)
    except ReplicaDeskError as e:
        print(f"replicadesk-console: error: {e}", file=sys.stderr)
        return e.exit_code

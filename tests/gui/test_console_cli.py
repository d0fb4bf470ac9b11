"""`replicadesk console`: core's CLI loads Qt only for this command, and `--render` writes a
picture of every main view from a real lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from gui.render import render_views

ROOT = Path(__file__).resolve().parents[2]
VIEWS = {
    "session",
    "jobs",
    "replicas-ready",
    "replicas-active",
    "last-24-hours",
    "inventory",
    "inventory-filtered",
    "inventory-vms-and-templates",
    "inventory-add-to-job",  # its right-click menu, Add to Replication Job open on the jobs
    "managed-servers",
    "backup-proxies",
    "repositories",
    "history",
    # every step of the New Replication Job wizard, refusals included, and Edit job
    "wizard-1-name",
    "wizard-2-vms",
    "wizard-2-vms-exclusions",
    "wizard-3-destination",
    "wizard-4-network",
    "wizard-5-reip-invalid",
    "wizard-5-reip",
    "wizard-6-settings-invalid",
    "wizard-6-settings",
    "wizard-7-data-transfer",
    "wizard-7-seeding-invalid",
    "wizard-7-seeding",
    "wizard-7-guest-processing",
    "wizard-8-schedule",
    "wizard-9-summary",
    "wizard-edit-destination",
    "wizard-added-from-inventory",  # opened by Add to Replication Job, the VMs added
    # replica operations, failover plans and planning (gui.render_dr)
    "confirm-failover-now",
    "operation-failover",
    "replicas-failed-over",
    "confirm-planned-failover",
    "confirm-undo-failover",
    "confirm-permanent-failover",
    "confirm-failback",
    "confirm-failback-new-location",
    "confirm-commit-failback",
    "confirm-undo-failback",
    "confirm-test-failover",
    "confirm-test-cleanup",
    "operation-failback-cancel",
    "operation-failback-cancelled",
    "plan-editor",
    "plan-readiness",
    "plan-readiness-missing-mapping",
    "plan-run",
    "plan-run-cancel",
    "plan-run-cancelled",
    "failover-plans",
    "bandwidth",
    "add-server",
    "add-server-certificate",
    "add-proxy",
    "add-proxy-refused",
    "add-repository",
    "add-repository-refused",
}


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, core.cli.main as m; m._parser();"
        "import core.jobs.runner, core.store.store;"
        "bad = sorted(k for k in sys.modules if k.startswith(('PySide6', 'shiboken6', 'gui')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_console_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "core", "console", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--render" in proc.stdout


def test_render_writes_every_view(tmp_path: Path) -> None:
    paths = render_views(tmp_path / "png", vms=6)
    assert {p.stem for p in paths} == VIEWS
    for path in paths:
        image = QImage(str(path))
        # Windows are 1000 px wide or more; confirmations and operation windows 700 or more.
        assert not image.isNull() and image.width() >= 700, path
        colours = {
            image.pixel(x, y)
            for x in range(0, image.width(), 7)
            for y in range(0, image.height(), 7)
        }
        assert len(colours) > 30, f"{path.name} looks empty ({len(colours)} colours)"

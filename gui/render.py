"""`replicadesk console --render DIR`: every main view of the console, offscreen, as PNG files.

Starts the built-in lab in-process, sets ReplicaDesk up on it (servers, proxies, repository),
creates jobs (one over lab VMs and a folder; one scheduled daily that has not run yet), runs the
first once headless, lets the guests write, then runs it again from the console's Run action
and opens its session window (with its throughput chart), loads the inventory, and grabs each
page of the main window, the session window, every step of the New Replication Job wizard
(`gui.render_wizard`, which stores a third job) and Edit job, the Inventory view's "Add to
Replication Job" menu open with the wizard it opens, and the Add Server dialog with the
certificate alert of a TLS ESXi host (a simulator of its own). The README's pictures come from
here; so do the checks that nothing is clipped or empty.

Waiting is on signals (a nested `QEventLoop` quit by the signal or a timeout), never on sleeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal, SignalInstance
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QMenu, QWidget

from core.errors import ReplicaDeskError
from core.jobs.runner import run_job
from core.lab.churn import churn
from core.lab.lab import Lab, LabState
from core.lab.register import lab_job, register_lab
from core.lab.topology import LabOptions
from core.model.schedule import Daily, JobSchedule
from core.store.store import Store

MAIN_JOB = "Tier 1 to DR"
SCHEDULED_JOB = "File servers nightly"
MAIN_VMS = ("dc01", "web 02 (canary)", "db #2 & replica", "app+cache", "50% batch")
MAIN_FOLDER = "Apps/Web"
SCHEDULED_VMS = ("Zürich fileserver [fs]",)
SIZE = (1400, 860)


class Relay(QObject):
    """Re-emits a signal on the GUI thread. A signal of a worker connected to a plain function
    runs it on the worker's thread; connected to this QObject's method it is queued here."""

    fired = Signal()

    def __init__(self, signal: SignalInstance, accept: Callable[..., bool] | None = None) -> None:
        super().__init__()
        self.args: tuple[object, ...] = ()
        self.count = 0
        self._accept = accept
        signal.connect(self.forward)

    def forward(self, *args: object) -> None:
        """Runs on the GUI thread; fires only for arguments `accept` takes (when given)."""
        if self._accept is not None and not self._accept(*args):
            return
        self.args = args
        self.count += 1
        self.fired.emit()


def wait_for(
    signal: SignalInstance, timeout: float, until: Callable[[], bool] | None = None
) -> bool:
    """Run the event loop until `signal` fires (and `until()` holds), or `timeout` seconds."""
    if until is not None and until():
        return True
    relay = Relay(signal)
    loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)

    def check() -> None:
        if until is None or until():
            loop.quit()

    relay.fired.connect(check)
    timer.start(int(timeout * 1000))
    loop.exec()
    signal.disconnect(relay.forward)
    ok = timer.isActive() and (until is None or until())
    timer.stop()
    return ok


def settle() -> None:
    """Deliver the events already posted (layout requests of a toolbar just refilled, of a
    table just shown) by running the event loop until a zero-delay timer fires."""
    loop = QEventLoop()
    QTimer.singleShot(0, loop.quit)
    loop.exec()


def _save(widget: QWidget, folder: Path, name: str) -> Path:
    settle()
    path = folder / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise ReplicaDeskError(f"could not write {path}")
    return path


def render_views(out: Path, vms: int = 12) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.app import create_app
    from gui.main_window import MainWindow, Page
    from gui.render_dr import render_dr
    from gui.render_wizard import WIZARD_SIZE, render_wizard

    create_app()
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="replicadesk-render-") as tmp:
        work = Path(tmp)
        lab = Lab(LabOptions(vms=vms), folder=work / "lab", wan=os.geteuid() == 0)
        state = lab.start()
        try:
            with Store.open(work / "replicadesk.db") as store:
                register_lab(store, state, work / "metadata")
                store.jobs.add(lab_job(state, MAIN_JOB, MAIN_VMS, folders=(MAIN_FOLDER,)))
                nightly = lab_job(state, SCHEDULED_JOB, SCHEDULED_VMS, keep=14)
                store.jobs.add(
                    dataclasses.replace(
                        nightly,
                        description="File servers, every night",
                        schedule=JobSchedule(Daily((dt.time(22, 30),))),
                    )
                )
                run_job(store, MAIN_JOB)
                churn(state, rate=8 << 20, duration=1.0)

                window = MainWindow(store, poll_ms=250)
                window.resize(*SIZE)
                window.show()
                window.start()
                if not wait_for(window.watcher.jobsChanged, 10):
                    raise ReplicaDeskError("the console did not read the database in 10 s")
                wait_for(
                    window.inventory_model.modelReset,
                    30,
                    lambda: len(window.inventory_model.inventories) == 2,
                )

                window.show_page(Page.JOBS)
                window.jobs_view.select_key(MAIN_JOB)
                [worker] = window.run_selected_jobs()
                wait_for(worker.sessionStarted, 30)
                window.open_selected_session()
                session = window.session_windows[worker.session_id or 0]
                session.resize(1200, 720)
                wait_for(window.workers.idle, 120, lambda: not window.workers.busy)
                wait_for(
                    session.updated,
                    10,
                    lambda: session.detail is not None and session.detail.session.ended is not None,
                )
                wait_for(
                    window.watcher.jobsChanged,
                    10,
                    lambda: all(r.running is None for r in window.jobs_model.records()),
                )
                session.tasks.fit_columns()
                session.log.fit_columns()
                paths.append(_save(session, out, "session"))
                session.close()

                window.jobs_view.select_key(MAIN_JOB)
                paths.append(_save(window, out, "jobs"))
                wizard = window.new_job()
                paths += render_wizard(wizard, state, lambda w, name: _save(w, out, name))
                edit = window.edit_selected_job()
                if edit is None:
                    raise ReplicaDeskError("Edit job did not open the wizard")
                edit.resize(*WIZARD_SIZE)
                wait_for(edit.inventoryArrived, 30, lambda: not edit.loading)
                edit.next()
                edit.next()
                paths.append(_save(edit, out, "wizard-edit-destination"))
                edit.reject()
                window.show_page(Page.REPLICAS_READY)
                window.ready_view.table.view.selectRow(0)
                paths.append(_save(window, out, "replicas-ready"))
                window.show_page(Page.REPLICAS_ACTIVE)
                paths.append(_save(window, out, "replicas-active"))
                paths += render_dr(window, lambda w, name: _save(w, out, name), MAIN_JOB)
                window.show_page(Page.LAST_24H)
                window.last24_view.view.selectRow(0)
                paths.append(_save(window, out, "last-24-hours"))
                window.show_page(Page.INVENTORY)
                view = window.inventory_view
                index = view.proxy.mapFromSource(
                    window.inventory_model.find(
                        state_vm_moref(window, "db #2 & replica"), state.production.address
                    )
                )
                view.tree.setCurrentIndex(index)
                view.tree.scrollTo(index)
                paths.append(_save(window, out, "inventory"))
                paths += render_add_to_job(window, state.production.address, out)
                view.filter.setText("web")
                paths.append(_save(window, out, "inventory-filtered"))
                view.filter.clear()
                view.mode.setCurrentIndex(1)
                paths.append(_save(window, out, "inventory-vms-and-templates"))
                for page, name in (
                    (Page.SERVERS, "managed-servers"),
                    (Page.PROXIES, "backup-proxies"),
                    (Page.REPOSITORIES, "repositories"),
                    (Page.HISTORY, "history"),
                ):
                    window.show_page(page)
                    if page == Page.HISTORY:
                        window.history_view.view.selectRow(0)
                    paths.append(_save(window, out, name))
                    if page == Page.SERVERS:
                        paths += render_add_server(window, work, out)
                    if page == Page.PROXIES:
                        paths += render_add_proxy(window, state, out)
                    if page == Page.REPOSITORIES:
                        paths += render_add_repository(window, out)
                window.close()
        finally:
            lab.stop()
    return paths


ADD_VMS = ("app+cache", "db #2 & replica")  # added to SCHEDULED_JOB, which has neither


def _save_with_menus(window: QWidget, menus: list[QMenu], folder: Path, name: str) -> Path:
    """The window with its open menus drawn where they are (a grab shows no popup)."""
    settle()
    picture = window.grab()
    painter = QPainter(picture)
    for menu in menus:
        painter.drawPixmap(window.mapFromGlobal(menu.pos()), menu.grab())
    painter.end()
    path = folder / f"{name}.png"
    if not picture.save(str(path)):
        raise ReplicaDeskError(f"could not write {path}")
    return path


def render_add_to_job(window: object, server: str, out: Path) -> list[Path]:
    """Two VMs selected in the Inventory view, its right-click menu with "Add to Replication
    Job" open on the jobs; then the Edit wizard that entry opens, the VMs added."""
    from gui.main_window import MainWindow
    from gui.render_wizard import WIZARD_SIZE, tree_index

    assert isinstance(window, MainWindow)
    view = window.inventory_view
    selection = view.tree.selectionModel()
    selection.clear()
    for vm in ADD_VMS:
        index = view.proxy.mapFromSource(tree_index(window.inventory_model, server, vm))
        selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
    view.tree.scrollTo(index)
    # The right-click menu as Qt makes it from the tree's actions, drawn with copies of them:
    # a menu the actions were added to from Python takes their wrappers with it when deleted.
    context = QMenu(window)
    for action in view.tree.actions():
        copy = context.addAction(action.icon(), action.text())
        copy.setShortcut(action.shortcut())
        copy.setEnabled(action.isEnabled())
        if action is window.add_to_job.action:
            copy.setMenu(QMenu(context))  # the arrow; the real submenu opens beside it
            opened = copy
    at = view.tree.visualRect(index).center()
    context.popup(view.tree.viewport().mapToGlobal(at))
    context.setActiveAction(opened)
    submenu = window.add_to_job.menu
    submenu.popup(context.mapToGlobal(context.actionGeometry(opened).topRight()))
    [entry] = [a for a in submenu.actions() if a.data() == SCHEDULED_JOB]
    submenu.setActiveAction(entry)
    paths = [_save_with_menus(window, [context, submenu], out, "inventory-add-to-job")]
    submenu.hide()
    context.hide()
    context.deleteLater()
    wizard = window.add_to_job.add_selection(SCHEDULED_JOB)
    if wizard is None:
        raise ReplicaDeskError(f"Add to Replication Job did not open {SCHEDULED_JOB}'s wizard")
    wizard.resize(*WIZARD_SIZE)
    paths.append(_save(wizard, out, "wizard-added-from-inventory"))
    wizard.reject()
    return paths


def render_add_server(window: object, work: Path, out: Path) -> list[Path]:
    """The Add Server dialog filled in for an ESXi host serving TLS (a simulator of its own,
    stopped here), then its certificate security alert; cancelled, so nothing is stored."""
    from core.lab.simulator import Simulator, SimulatorSpec
    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    with Simulator(SimulatorSpec.esx(vms=1), workdir=work / "esx-tls", tls=True) as sim:
        dialog = window.add_server()
        dialog.kind.setCurrentIndex(1)
        # Not sim.host: the lab's servers are stored under 127.0.0.1, and the address is a
        # server's name. "localhost" is on the simulator's certificate too.
        dialog.address.setText("localhost")
        dialog.port.setValue(sim.port)
        dialog.user.setText("root")
        dialog.password.setText("password")
        dialog.description.setText("DR site host, added directly for failover")
        dialog.adjustSize()
        paths = [_save(dialog, out, "add-server")]
        dialog.connect_button.click()
        if not wait_for(dialog.certificateShown, 30):
            raise ReplicaDeskError(
                f"Add Server did not show the certificate: "
                f"{dialog.status.text() or dialog.errors.shown()}"
            )
        paths.append(_save(dialog, out, "add-server-certificate"))
        dialog.reject()
    return paths


def render_add_proxy(window: object, state: LabState, out: Path) -> list[Path]:
    """The Add Proxy dialog filled in for a second proxy with the lab's TLS files, then its check
    refused in words under the form (a port where no mover listens); cancelled, so nothing is
    stored."""
    import socket

    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    dialog = window.add_proxy()
    dialog.name.setText("zurich-proxy-2")
    address = state.production.proxy_address
    dialog.address.setText(address)
    dialog.site.setCurrentText("production")
    dialog.max_tasks.setText("8")
    for part in ("cert", "key", "ca"):
        dialog.tls[part].setText(state.client_tls[part])
    dialog.description.setText("Second source proxy, Zürich rack B")
    dialog.adjustSize()
    paths = [_save(dialog, out, "add-proxy")]
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind((address, 0))
        closed = int(s.getsockname()[1])
    dialog.port.setValue(closed)
    dialog.finish_button.click()
    if not wait_for(dialog.errorShown, 30):
        raise ReplicaDeskError(f"Add Proxy did not refuse port {closed}: {dialog.status.text()}")
    dialog.adjustSize()
    paths.append(_save(dialog, out, "add-proxy-refused"))
    dialog.reject()
    return paths


def render_add_repository(window: object, out: Path) -> list[Path]:
    """The Add Repository dialog filled in for a folder on the lab's source proxy, then refusing
    a name already stored beside its field; cancelled, so nothing is stored."""
    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    dialog = window.add_repository()
    dialog.proxy.setCurrentIndex(1 if dialog.proxy.count() > 1 else 0)
    dialog.name.setText("Zürich metadata")
    dialog.path.setText("/var/lib/replicadesk/zurich")
    dialog.description.setText("Replica metadata of the Zürich jobs")
    dialog.adjustSize()
    paths = [_save(dialog, out, "add-repository")]
    stored = window.repositories_model.records()
    if not stored:
        raise ReplicaDeskError("the lab has no repository for Add Repository to refuse")
    dialog.name.setText(stored[0].name)
    dialog.finish_button.click()
    dialog.adjustSize()
    paths.append(_save(dialog, out, "add-repository-refused"))
    dialog.reject()
    return paths


def state_vm_moref(window: object, name: str) -> str:
    """The moref of the production VM called `name`, from the inventory the console loaded."""
    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    for inventory in window.inventory_model.inventories.values():
        found = inventory.vms_named(name)
        if found:
            return found[0].moref
    raise ReplicaDeskError(f"the inventory has no VM named {name!r}")

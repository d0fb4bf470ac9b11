"""The console's Add Server dialog against a simulated ESXi host serving TLS (its certificate from
a CA of the test's own, which nothing here trusts, as with a self-signed host).

Connect reads the certificate on a worker and shows its SHA-256 thumbprint; Trust and Finish logs
in with it pinned and stores the server and its password through `core.jobs.servers.add_server`,
the CLI's path; the main window's servers table and inventory then show it. A wrong password is
said in words, the detail one click away, and stores nothing; so does Cancel. The form's values
are checked by core's model, the reason beside the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from core.jobs.servers import connect_stored
from core.lab.simulator import Simulator, SimulatorSpec
from core.model.infra import ServerKind
from core.store.store import Store
from gui.main_window import MainWindow, Page
from gui.server_dialog import AddServerDialog
from gui.workers import Workers
from tests.core.lab.conftest import launcher  # noqa: F401  (the session's cached build)

PASSWORD = "s3cret pw"
# Only root with PASSWORD logs in (vcsim's default takes any password).
SPEC = dataclasses.replace(SimulatorSpec.esx(vms=2), login_user="root", login_password=PASSWORD)


@pytest.fixture(scope="module")
def esx(launcher: Path) -> Iterator[Simulator]:  # noqa: F811
    with Simulator(SPEC, launcher=launcher, tls=True) as sim:
        yield sim


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        yield s


@pytest.fixture
def workers() -> Iterator[Workers]:
    w = Workers()
    yield w
    w.cancel_all()
    w.wait_all()


def fill(dialog: AddServerDialog, sim: Simulator, password: str = PASSWORD) -> None:
    dialog.kind.setCurrentIndex(dialog.kind.findData(ServerKind.ESXI))
    dialog.address.setText(sim.host)
    dialog.port.setValue(sim.port)
    dialog.user.setText("root")
    dialog.password.setText(password)
    dialog.description.setText("DR host")


def nothing_stored(store: Store) -> bool:
    return store.servers.list() == [] and store.credentials.names() == []


def test_trusted_certificate_is_pinned_stored_and_loaded(
    qtbot: QtBot, esx: Simulator, store: Store
) -> None:
    window = MainWindow(store, poll_ms=200)
    qtbot.addWidget(window)
    window.show()
    window.start()
    window.show_page(Page.SERVERS)
    assert window.act_add_server in window.toolbar.actions()
    with qtbot.waitSignal(window.serverDialogOpened) as opened:
        window.act_add_server.trigger()
    dialog = opened.args[0]
    assert isinstance(dialog, AddServerDialog)
    assert dialog.port.value() == 443
    fill(dialog, esx)
    assert dialog.password.echoMode() == dialog.password.EchoMode.Password

    with qtbot.waitSignal(dialog.certificateShown, timeout=20_000) as shown:
        dialog.connect_button.click()
        # The click returned before the server answered: the worker reads the certificate.
        assert dialog.worker is not None and dialog.presented is None
    assert shown.args[0].thumbprint == esx.thumbprint
    assert dialog.pages.currentIndex() == dialog.CERTIFICATE
    assert dialog.thumbprint.text() == esx.thumbprint
    assert dialog.subject.text() and dialog.expires.text().endswith("UTC")
    assert nothing_stored(store)  # shown, not accepted yet

    ticks = []
    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(lambda: ticks.append(1))
    with qtbot.waitSignal(dialog.added, timeout=30_000) as added:
        dialog.trust_button.click()
        assert dialog.worker is not None and nothing_stored(store)
        timer.start()
    timer.stop()
    assert ticks, "the GUI thread did not turn while the worker logged in"
    assert not dialog.isVisible()

    [server] = store.servers.list()
    assert added.args[0] == server
    assert server.address == esx.host and server.port == esx.port
    assert server.kind == ServerKind.ESXI and server.user == "root"
    assert server.thumbprint == esx.thumbprint and server.pinned
    assert server.description == "DR host"
    assert store.credentials.names() == [server.credential]
    with connect_stored(store, server.address, keepalive=False) as client:
        assert client.about.full_name.startswith("VMware ESXi")

    # The table follows the store and the inventory of the new server is read.
    qtbot.waitUntil(lambda: window.servers_model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: esx.host in window.inventory_model.inventories, timeout=30_000)
    assert window.server_dialog is None
    window.workers.cancel_all()
    window.workers.wait_all()
    window.watcher.stop()


def test_wrong_password_is_said_and_nothing_is_stored(
    qtbot: QtBot, esx: Simulator, store: Store, workers: Workers
) -> None:
    dialog = AddServerDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, esx, password="wrong")
    with qtbot.waitSignal(dialog.certificateShown, timeout=20_000):
        dialog.connect_button.click()
    with qtbot.waitSignal(dialog.errorShown, timeout=30_000) as error:
        dialog.trust_button.click()
    message = error.args[0]
    assert "refused the login of 'root'" in message, message
    assert dialog.status.text() == message
    assert dialog.pages.currentIndex() == dialog.FORM  # back to the password
    assert dialog.details_button.isVisible()
    box = dialog.show_details()
    assert "VSphereLoginError" in box.detailedText()
    box.close()
    assert nothing_stored(store)
    assert dialog.isVisible()


def test_cancel_stores_nothing(
    qtbot: QtBot, esx: Simulator, store: Store, workers: Workers
) -> None:
    dialog = AddServerDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, esx)
    with qtbot.waitSignal(dialog.certificateShown, timeout=20_000):
        dialog.connect_button.click()
    # Cancel while the login runs: its answer comes and is ignored.
    with qtbot.waitSignal(workers.idle, timeout=30_000):
        dialog.trust_button.click()
        dialog.cancel_button.click()
    assert not dialog.isVisible()
    assert nothing_stored(store)


def test_form_values_are_checked_beside_their_field(
    qtbot: QtBot, store: Store, workers: Workers
) -> None:
    dialog = AddServerDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.user.setText("root")
    dialog.password.setText(PASSWORD)
    dialog.connect_button.click()
    shown = dialog.errors.shown()
    assert list(shown) == ["address"] and dialog.worker is None
    dialog.address.setText("esx01.example.com")
    dialog.password.clear()
    dialog.connect_button.click()
    assert list(dialog.errors.shown()) == ["password"]
    dialog.protocol.setCurrentIndex(1)
    assert dialog.port.value() == 80  # the default port follows the protocol
    assert not workers.busy and nothing_stored(store)

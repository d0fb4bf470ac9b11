"""The console's Add Proxy dialog against a real mover service (`replicadesk mover serve` in its
own process, with its TLS certificates): Finish connects to the mover on a worker, with a full
TLS handshake, and only then stores the proxy through `core.jobs.proxies.add_proxy` (the CLI's
path); the main window's table shows it. A port where nothing listens, or a mover that refuses
our certificate, is shown in words with Details and nothing is stored. Bad values are refused
beside their field by core's own rules; Cancel stores nothing, even while the check runs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.model.infra import BackupProxy, TransportMode
from core.mover.certs import create_certificates
from core.mover.process import MoverServiceProcess
from core.mover.tls import TlsFiles
from core.store.store import Store
from gui.main_window import MainWindow, Page
from gui.proxy_dialog import AddProxyDialog
from gui.workers import Workers
from tests.conftest import Certs


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


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(dialog: AddProxyDialog, name: str, port: int, tls: TlsFiles | None) -> None:
    dialog.name.setText(name)
    dialog.address.setText("127.0.0.1")
    dialog.port.setValue(port)
    dialog.site.setCurrentText("production")
    if tls is not None:
        dialog.tls["cert"].setText(str(tls.cert))
        dialog.tls["key"].setText(str(tls.key))
        dialog.tls["ca"].setText(str(tls.ca))


def test_finish_checks_the_mover_then_stores_and_the_table_shows_it(
    qtbot: QtBot, store: Store, mover: MoverServiceProcess, certs: Certs
) -> None:
    window = MainWindow(store, poll_ms=200)
    qtbot.addWidget(window)
    window.show()
    window.start()
    window.show_page(Page.PROXIES)
    assert window.act_add_proxy in window.toolbar.actions()
    assert window.act_add_proxy in window.proxies_view.table.actions_for_menu
    assert window.act_add_proxy in window.inventory_menu.actions()
    with qtbot.waitSignal(window.proxyDialogOpened) as opened:
        window.act_add_proxy.trigger()
    dialog = opened.args[0]
    assert isinstance(dialog, AddProxyDialog)
    fill(dialog, "prod-proxy", mover.port, certs.client)
    dialog.max_tasks.setText("6")
    dialog.modes[TransportMode.HOTADD].setChecked(False)
    dialog.description.setText("Zürich source proxy")
    with qtbot.waitSignal(dialog.busyChanged) as busy:
        dialog.finish_button.click()
    assert busy.args == [True]
    # The check runs on a worker: the form waits, the GUI thread does not.
    assert not dialog.finish_button.isEnabled()
    assert store.proxies.list() == []
    with qtbot.waitSignal(dialog.added, timeout=30_000) as added:
        pass
    assert not dialog.isVisible()

    stored = store.proxies.get("prod-proxy")
    assert added.args[0] == stored
    assert stored == BackupProxy(
        name="prod-proxy",
        address="127.0.0.1",
        site="production",
        port=mover.port,
        max_tasks=6,
        transport_modes=(TransportMode.DIRECT, TransportMode.NETWORK),
        tls=certs.client,
        description="Zürich source proxy",
    )
    model = window.proxies_model
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=10_000)
    assert [p.name for p in model.records()] == ["prod-proxy"]
    assert window.proxy_dialog is None
    window.workers.cancel_all()
    window.workers.wait_all()
    window.watcher.stop()


def test_unreachable_or_refusing_mover_is_shown_and_nothing_stored(
    qtbot: QtBot,
    store: Store,
    workers: Workers,
    mover: MoverServiceProcess,
    tmp_path: Path,
) -> None:
    dialog = AddProxyDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    port = closed_port()
    fill(dialog, "p1", port, None)
    with (
        qtbot.assertNotEmitted(dialog.added),
        qtbot.waitSignal(dialog.errorShown, timeout=30_000) as shown,
    ):
        dialog.finish_button.click()
    assert f"cannot reach its mover service at 127.0.0.1:{port}" in shown.args[0]
    assert "not added" in dialog.status.text()
    assert dialog.details_button.isVisible()
    assert "ProxyCheckError" in dialog.detail and "ConnectionRefusedError" in dialog.detail
    box = dialog.show_details()
    assert box.detailedText() == dialog.detail
    box.close()
    assert dialog.isVisible() and dialog.finish_button.isEnabled()
    assert store.proxies.list() == []

    # The mover does not trust a certificate from another CA: the handshake fails.
    other = create_certificates(tmp_path / "other-ca", ["localhost", "127.0.0.1"])
    fill(dialog, "p2", mover.port, TlsFiles(other["client"], other["client_key"], other["ca"]))
    with (
        qtbot.assertNotEmitted(dialog.added),
        qtbot.waitSignal(dialog.errorShown, timeout=30_000) as shown,
    ):
        dialog.finish_button.click()
    assert "Proxy p2:" in shown.args[0] and "not added" in shown.args[0]
    assert f"127.0.0.1:{mover.port}" in shown.args[0]
    assert dialog.details_button.isVisible()
    assert store.proxies.list() == []


def test_bad_values_are_refused_beside_their_field(
    qtbot: QtBot, store: Store, workers: Workers, certs: Certs, tmp_path: Path
) -> None:
    store.proxies.add(BackupProxy("prod-proxy", "10.0.0.5", "production"))
    dialog = AddProxyDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, "second", closed_port(), None)

    def refused(field: str, words: str) -> None:
        # Refused before any connection: no worker starts.
        with qtbot.assertNotEmitted(dialog.busyChanged), qtbot.assertNotEmitted(dialog.added):
            dialog.finish_button.click()
        shown = dialog.errors.shown()
        assert list(shown) == [field], shown
        assert words in shown[field], shown
        assert dialog.isVisible() and dialog.worker is None
        assert [p.name for p in store.proxies.list()] == ["prod-proxy"]

    dialog.max_tasks.setText("many")
    refused("max_tasks", '"many" is not a whole number')
    dialog.max_tasks.setText("0")
    refused("max_tasks", "out of range (1 to 64)")
    dialog.max_tasks.setText("65")
    refused("max_tasks", "out of range (1 to 64)")
    dialog.max_tasks.setText("4")
    dialog.name.setText("prod-proxy")
    refused("name", "exists already")
    dialog.name.setText("")
    refused("name", "must not be empty")
    dialog.name.setText("second")
    dialog.site.setCurrentText("")
    refused("site", "must not be empty")
    dialog.site.setCurrentText("production")
    for box in dialog.modes.values():
        box.setChecked(False)
    refused("transport_modes", "at least one transport mode")
    dialog.modes[TransportMode.NETWORK].setChecked(True)
    dialog.tls["cert"].setText(str(certs.client.cert))
    refused("tls.key", "or none of them")
    dialog.tls["key"].setText("client.key")
    dialog.tls["ca"].setText(str(certs.client.ca))
    refused("tls.key", "not an absolute path")
    dialog.tls["key"].setText(str(tmp_path / "missing.key"))
    refused("tls.key", "does not exist")


def test_cancel_stores_nothing(
    qtbot: QtBot, store: Store, workers: Workers, mover: MoverServiceProcess, certs: Certs
) -> None:
    dialog = AddProxyDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, "prod-proxy", mover.port, certs.client)
    with qtbot.waitSignal(dialog.rejected):
        dialog.cancel_button.click()
    assert store.proxies.list() == []

    # Cancelled while the check runs: its answer is ignored.
    dialog = AddProxyDialog(store, workers)
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, "prod-proxy", mover.port, certs.client)
    dialog.finish_button.click()
    worker = dialog.worker
    assert worker is not None
    with qtbot.waitSignal(worker.done, timeout=30_000), qtbot.assertNotEmitted(dialog.added):
        dialog.cancel_button.click()
    assert not dialog.isVisible()
    assert store.proxies.list() == []

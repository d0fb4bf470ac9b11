"""The console's Add Repository dialog on a real store: Finish stores the repository through
`core.jobs.repositories.add_repository` (the CLI's path), makes its folder on this host, and the
main window's table shows it; a proxy's repository takes the proxy's site. Bad values are refused
beside their field by core's own rules; Cancel stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.model.infra import BackupProxy, Repository
from core.store.store import Store
from gui.main_window import MainWindow, Page
from gui.repository_dialog import THIS_HOST, AddRepositoryDialog


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "replicadesk.db") as s:
        yield s


def test_finish_stores_the_repository_and_the_table_shows_it(
    qtbot: QtBot, store: Store, tmp_path: Path
) -> None:
    window = MainWindow(store, poll_ms=200)
    qtbot.addWidget(window)
    window.show()
    window.start()
    window.show_page(Page.REPOSITORIES)
    assert window.act_add_repository in window.toolbar.actions()
    assert window.act_add_repository in window.repositories_view.table.actions_for_menu
    assert window.act_add_repository in window.inventory_menu.actions()
    with qtbot.waitSignal(window.repositoryDialogOpened) as opened:
        window.act_add_repository.trigger()
    dialog = opened.args[0]
    assert isinstance(dialog, AddRepositoryDialog)
    assert dialog.proxy.currentText() == THIS_HOST
    folder = tmp_path / "metadata" / "replicas"
    dialog.name.setText("metadata")
    dialog.site.setCurrentText("production")
    dialog.path.setText(str(folder))
    dialog.description.setText("Zürich metadata")
    with qtbot.waitSignal(dialog.added) as added:
        dialog.finish_button.click()
    assert not dialog.isVisible()

    stored = store.repositories.get("metadata")
    assert added.args[0] == stored
    assert stored == Repository("metadata", str(folder), "production", None, "Zürich metadata")
    assert folder.is_dir()  # made on this host, as the CLI does
    model = window.repositories_model
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=10_000)
    assert [r.name for r in model.records()] == ["metadata"]
    assert window.repository_dialog is None
    window.workers.cancel_all()
    window.workers.wait_all()
    window.watcher.stop()


def test_a_proxys_repository_takes_its_site(qtbot: QtBot, store: Store) -> None:
    store.proxies.add(BackupProxy("prod-proxy", "10.0.0.5", "production"))
    dialog = AddRepositoryDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.proxy.setCurrentIndex(dialog.proxy.findData("prod-proxy"))
    assert dialog.site.currentText() == "production" and not dialog.site.isEnabled()
    dialog.name.setText("meta-on-proxy")
    # The proxy's folder: not made here (it is on the proxy's host).
    dialog.path.setText("/nonexistent-on-this-host/replicadesk")
    with qtbot.waitSignal(dialog.added):
        dialog.finish_button.click()
    [repo] = store.repositories.list()
    assert (repo.proxy, repo.site) == ("prod-proxy", "production")
    assert not Path("/nonexistent-on-this-host").exists()


def test_bad_values_are_refused_beside_their_field(
    qtbot: QtBot, store: Store, tmp_path: Path
) -> None:
    store.repositories.add(Repository("metadata", str(tmp_path), "production"))
    dialog = AddRepositoryDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.site.setCurrentText("production")

    def refused(field: str, words: str) -> None:
        with qtbot.assertNotEmitted(dialog.added):
            dialog.finish_button.click()
        shown = dialog.errors.shown()
        assert list(shown) == [field], shown
        assert words in shown[field], shown
        assert dialog.isVisible()
        assert [r.name for r in store.repositories.list()] == ["metadata"]

    dialog.name.setText("metadata")
    dialog.path.setText(str(tmp_path / "other"))
    refused("name", "exists already")
    dialog.name.setText("")
    refused("name", "must not be empty")
    dialog.name.setText("second")
    dialog.path.setText("relative/folder")
    refused("path", "not an absolute path")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dialog.path.setText(str(blocker / "sub"))
    refused("path", "cannot make")
    dialog.path.setText(str(tmp_path / "second"))
    dialog.site.setCurrentText("")
    refused("site", "give the site")
    assert not (tmp_path / "second").exists()


def test_cancel_stores_nothing(qtbot: QtBot, store: Store, tmp_path: Path) -> None:
    dialog = AddRepositoryDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.name.setText("metadata")
    dialog.site.setCurrentText("production")
    dialog.path.setText(str(tmp_path / "metadata"))
    with qtbot.waitSignal(dialog.rejected):
        dialog.cancel_button.click()
    assert store.repositories.list() == []
    assert not (tmp_path / "metadata").exists()

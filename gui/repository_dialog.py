"""Add Repository: a folder for replica metadata added from the console, as `replicadesk repo add`
does from the command line.

The admin names the repository, picks the proxy that serves its folder (or this host), its site
(a proxy's own site, taken from it) and the folder's absolute path. Each value is checked by core's
model (`Repository`) and by `core.jobs.repositories.add_repository`, the CLI's own path, and the
reason is shown beside the field: a name already stored, a relative path, a folder on this host
that cannot be made or written. Finish stores it; Cancel stores nothing.

No network here: a folder on a proxy is the proxy's to make, and one on this host is a local
mkdir, so the store is written on the GUI thread (local SQLite), as the other dialogs do.
"""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError, ReplicaDeskError
from core.jobs.repositories import add_repository, refuse_duplicate_repository, repository_site
from core.model.infra import Repository
from core.store.store import Store
from gui.infra_dialog import InfraDialog, add_rows

THIS_HOST = "This host (the console's)"


class AddRepositoryDialog(InfraDialog):
    """New repository: one form, stored at Finish."""

    added = Signal(object)  # the Repository stored

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__("New Repository", parent)
        self.store = store
        self.proxy_sites = {p.name: p.site for p in store.proxies.list()}

        intro = QLabel(
            "Where replica metadata (the digests of every block of every replica disk) is kept. "
            "It belongs on the source side, close to the source proxy. A folder on this host is "
            "made if missing.",
            self,
        )
        intro.setWordWrap(True)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("metadata")
        self.proxy = QComboBox(self)
        self.proxy.addItem(THIS_HOST, None)
        for name, site in sorted(self.proxy_sites.items()):
            self.proxy.addItem(f"{name} (site {site})", name)
        self.proxy.currentIndexChanged.connect(self._proxy_changed)
        self.site = QComboBox(self)
        self.site.setEditable(True)
        sites = {*self.proxy_sites.values(), *(r.site for r in store.repositories.list())}
        self.site.addItems(sorted(sites))
        self.site.setCurrentText("")
        site_edit = self.site.lineEdit()
        assert site_edit is not None  # editable
        site_edit.setPlaceholderText("production")
        self.path = QLineEdit(self)
        self.path.setPlaceholderText("/var/lib/replicadesk/metadata")
        self.description = QLineEdit(self)

        form = QFormLayout()
        rows = (
            ("name", "&Name:", self.name),
            ("proxy", "Pro&xy:", self.proxy),
            ("site", "S&ite:", self.site),
            ("path", "&Path:", self.path),
            ("description", "De&scription:", self.description),
        )
        add_rows(form, self.errors, ((k, t, w, w) for k, t, w in rows), self)

        self.finish_button = QPushButton("&Finish", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.finish_button.setDefault(True)
        self.finish_button.clicked.connect(self.finish)
        self.cancel_button.clicked.connect(self.reject)
        buttons = self.button_row(self.finish_button, self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addLayout(self.status_row())
        layout.addLayout(buttons)
        self.name.setFocus()

    @Slot(int)
    def _proxy_changed(self, _index: int) -> None:
        """A proxy's repository is at the proxy's site: shown, not chosen."""
        proxy = self.proxy.currentData()
        if proxy is not None:
            self.site.setCurrentText(self.proxy_sites[proxy])
        self.site.setEnabled(proxy is None)

    def built(self) -> Repository | None:
        """The repository the form describes, or None with the reason beside its field."""
        self.errors.clear()
        proxy = self.proxy.currentData()
        try:
            repo = Repository(
                name=self.name.text().strip(),
                path=self.path.text().strip(),
                site=repository_site(self.store, self.site.currentText().strip() or None, proxy),
                proxy=proxy,
                description=self.description.text().strip(),
            )
            refuse_duplicate_repository(self.store, repo.name)
        except InvalidSettingError as e:
            self._field_error(e)
            return None
        return repo

    @Slot()
    def finish(self) -> None:
        repo = self.built()
        if repo is None:
            return
        try:
            add_repository(self.store, repo)
        except InvalidSettingError as e:
            self._field_error(e)
            return
        except ReplicaDeskError as e:
            self._error(str(e))
            return
        self.added.emit(repo)
        self.accept()

"""Add Proxy: a backup proxy added from the console, as `replicadesk proxy add` does from the
command line.

The admin names the proxy and gives the address and port of its mover service (`replicadesk mover
serve`), its site, how many tasks it runs at once, the transport modes it can use, the TLS files
ReplicaDesk presents to the mover (its certificate and key, and the CA the mover's certificate is
checked against) and a description. Each value is checked by core's model (`BackupProxy`) and its
reason shown beside the field. Finish connects to the mover on a worker
(`core.jobs.proxies.check_proxy`: TCP, plus a TLS handshake when the files are given); once it
answered, the proxy is stored by `add_proxy`, the CLI's own path. A mover that cannot be reached
or a handshake refused is shown in words under the form, the detail behind Details, and nothing
is stored. Cancel stores nothing.

The GUI thread never waits on the network; the store is written on it (local SQLite) once the
worker reported.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError, ReplicaDeskError
from core.jobs.proxies import add_proxy, check_proxy, refuse_duplicate_proxy
from core.model.infra import DEFAULT_MOVER_PORT, TRANSPORT_ORDER, BackupProxy, TransportMode
from core.mover.tls import TlsFiles
from core.store.store import Store
from gui.infra_dialog import InfraDialog, add_rows, error_detail
from gui.workers import Worker, Workers

MODE_WORDS = {
    TransportMode.DIRECT: "Direct stora&ge access",
    TransportMode.HOTADD: "&Virtual appliance (hot-add)",
    TransportMode.NETWORK: "Net&work",
}
TLS_PARTS = (
    ("cert", "TLS c&ertificate:", "The certificate ReplicaDesk presents to the mover"),
    ("key", "TLS &key:", "Its private key"),
    ("ca", "TLS CA fi&le:", "The CA the mover's certificate is signed by"),
)


class ProxyCheckWorker(Worker):
    """Connects to the proxy's mover service once (with a TLS handshake when it has files)."""

    checked = Signal(str)  # what answered ("mover service at ... accepted our TLS certificate")

    def __init__(self, proxy: BackupProxy) -> None:
        super().__init__()
        self.proxy = proxy

    def work(self) -> None:
        try:
            answered = check_proxy(self.proxy)
        except ReplicaDeskError as e:
            self.failed.emit(str(e), error_detail(e))
            return
        if not self.cancelled:
            self.checked.emit(answered)


class AddProxyDialog(InfraDialog):
    """New backup proxy: one form, checked on a worker and stored at Finish."""

    added = Signal(object)  # the BackupProxy stored
    busyChanged = Signal(bool)  # a worker started (True) or reported (False)

    def __init__(self, store: Store, workers: Workers, parent: QWidget | None = None) -> None:
        super().__init__("New Backup Proxy", parent)
        self.store = store
        self.workers = workers
        self.proxy: BackupProxy | None = None  # being checked
        self.worker: ProxyCheckWorker | None = None

        self.form_page = QWidget(self)
        page = self.form_page
        intro = QLabel(
            "A host running the data mover service (`replicadesk mover serve`). Finish connects "
            "to it; with the TLS files it also makes a full handshake, so a proxy that would "
            "refuse ReplicaDesk is not added.",
            page,
        )
        intro.setWordWrap(True)
        self.name = QLineEdit(page)
        self.name.setPlaceholderText("prod-proxy")
        self.address = QLineEdit(page)
        self.address.setPlaceholderText("proxy.example.com or 192.0.2.20")
        self.port = QSpinBox(page)
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_MOVER_PORT)
        self.site = QComboBox(page)
        self.site.setEditable(True)
        sites = {p.site for p in store.proxies.list()} | {r.site for r in store.repositories.list()}
        self.site.addItems(sorted(sites))
        self.site.setCurrentText("")
        site_edit = self.site.lineEdit()
        assert site_edit is not None  # editable
        site_edit.setPlaceholderText("production")
        # A line, not a spin box: what was typed is checked by core's model, as the CLI's value.
        self.max_tasks = QLineEdit("4", page)
        self.modes_box = QWidget(page)
        modes_row = QHBoxLayout(self.modes_box)
        modes_row.setContentsMargins(0, 0, 0, 0)
        self.modes: dict[TransportMode, QCheckBox] = {}
        for mode in TRANSPORT_ORDER:
            box = QCheckBox(MODE_WORDS[mode], self.modes_box)
            box.setChecked(True)
            modes_row.addWidget(box)
            self.modes[mode] = box
        modes_row.addStretch(1)
        self.tls: dict[str, QLineEdit] = {}
        self.browse: dict[str, QPushButton] = {}
        tls_boxes: dict[str, QWidget] = {}
        for part, _text, tip in TLS_PARTS:
            edit = QLineEdit(page)
            edit.setToolTip(tip)
            button = QPushButton("Browse...", page)
            button.clicked.connect(lambda _checked=False, p=part: self.pick_file(p))
            holder = QWidget(page)
            row = QHBoxLayout(holder)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(edit, 1)
            row.addWidget(button)
            self.tls[part] = edit
            self.browse[part] = button
            tls_boxes[part] = holder
        self.tls["cert"].setPlaceholderText("/etc/replicadesk/tls/client.pem")
        self.tls["key"].setPlaceholderText("/etc/replicadesk/tls/client.key")
        self.tls["ca"].setPlaceholderText("/etc/replicadesk/tls/ca.pem")
        self.description = QLineEdit(page)

        form = QFormLayout()
        rows: list[tuple[str, str, QWidget, QWidget]] = [
            ("name", "&Name:", self.name, self.name),
            ("address", "&Address:", self.address, self.address),
            ("port", "Po&rt:", self.port, self.port),
            ("site", "S&ite:", self.site, self.site),
            ("max_tasks", "&Max concurrent tasks:", self.max_tasks, self.max_tasks),
            (
                "transport_modes",
                "&Transport modes:",
                self.modes_box,
                self.modes[TRANSPORT_ORDER[0]],
            ),
        ]
        rows += [(f"tls.{p}", text, tls_boxes[p], self.tls[p]) for p, text, _tip in TLS_PARTS]
        rows.append(("description", "De&scription:", self.description, self.description))
        add_rows(form, self.errors, rows, page)
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(intro)
        page_layout.addLayout(form)
        page_layout.addStretch(1)

        status_row = self.status_row()

        self.finish_button = QPushButton("&Finish", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.finish_button.setDefault(True)
        self.finish_button.clicked.connect(self.finish)
        self.cancel_button.clicked.connect(self.reject)
        buttons = self.button_row(self.finish_button, self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(page)
        layout.addLayout(status_row)
        layout.addLayout(buttons)
        self.name.setFocus()

    @Slot()
    def pick_file(self, part: str) -> None:
        """A file picker for one of the TLS files, starting beside the file named already."""
        edit = self.tls[part]
        start = edit.text().strip() or next(
            (str(Path(e.text().strip()).parent) for e in self.tls.values() if e.text().strip()),
            "",
        )
        title = {"cert": "TLS certificate", "key": "TLS private key", "ca": "TLS CA"}[part]
        chosen, _filter = QFileDialog.getOpenFileName(
            self, title, start, "PEM files (*.pem *.crt *.key);;All files (*)"
        )
        if chosen:
            edit.setText(chosen)

    def tls_files(self) -> TlsFiles | None:
        """The three TLS files, or None when none is given; all must be given, and exist."""
        given = {part: edit.text().strip() for part, edit in self.tls.items()}
        if not any(given.values()):
            return None
        for part, text in given.items():
            if not text:
                raise InvalidSettingError(
                    f"tls.{part}", "give the certificate, key and CA files, or none of them"
                )
        paths = {part: Path(text).expanduser() for part, text in given.items()}
        for part, path in paths.items():
            if path.is_absolute() and not path.is_file():
                raise InvalidSettingError(f"tls.{part}", f"{path} does not exist")
        return TlsFiles(paths["cert"], paths["key"], paths["ca"])

    def built(self) -> BackupProxy | None:
        """The proxy the form describes, or None with the reason beside its field."""
        self.errors.clear()
        untrusted_tasks: object = self.max_tasks.text().strip()
        if isinstance(untrusted_tasks, str) and untrusted_tasks.lstrip("-").isdigit():
            untrusted_tasks = int(untrusted_tasks)  # anything else: core's model says why not
        try:
            proxy = BackupProxy(
                name=self.name.text().strip(),
                address=self.address.text().strip(),
                site=self.site.currentText().strip(),
                port=self.port.value(),
                max_tasks=untrusted_tasks,  # type: ignore[arg-type]
                transport_modes=tuple(m for m, box in self.modes.items() if box.isChecked()),
                tls=self.tls_files(),
                description=self.description.text().strip(),
            )
            refuse_duplicate_proxy(self.store, proxy.name)
        except InvalidSettingError as e:
            self._field_error(e)
            return None
        return proxy

    @Slot()
    def finish(self) -> None:
        proxy = self.built()
        if proxy is None:
            return
        self.proxy = proxy
        worker = ProxyCheckWorker(proxy)
        worker.checked.connect(self._checked)
        worker.failed.connect(self._failed)
        self.worker = worker
        self._busy(True)
        self._say(f"Connecting to the mover service at {proxy.address}:{proxy.port}...")
        self.workers.start(worker)

    def _busy(self, busy: bool) -> None:
        for w in (self.form_page, self.finish_button):
            w.setEnabled(not busy)
        self.busyChanged.emit(busy)

    def _mine(self) -> bool:
        """Whether the signal comes from the worker this dialog still waits for."""
        return self.worker is not None and self.sender() is self.worker

    @Slot(str)
    def _checked(self, answered: str) -> None:
        if not self._mine() or self.proxy is None:
            return
        self.worker = None
        self._busy(False)
        try:
            add_proxy(self.store, self.proxy, check=False)
        except InvalidSettingError as e:
            self._field_error(e)
            return
        except ReplicaDeskError as e:
            self._error(str(e), error_detail(e))
            return
        self._say(f"Added: {answered}")
        self.added.emit(self.proxy)
        self.accept()

    @Slot(str, str)
    def _failed(self, message: str, detail: str) -> None:
        if not self._mine():
            return
        self.worker = None
        self._busy(False)
        self._error(message, detail)

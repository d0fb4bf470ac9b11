"""Add Server: a vCenter Server or an ESXi host added from the console, as `replicadesk server add`
does from the command line.

The admin fills in the server (kind, address, port, protocol, user, password, description); each
value is checked by core's own model (`ManagedServer`) and its reason shown beside the field.
Connect reads the certificate an https server presents, on a worker
(`core.jobs.servers.read_certificate`), and shows its SHA-256 thumbprint, subject, issuer and
expiry: the "Certificate security alert". Trust logs in on a worker with that thumbprint pinned
(`check_server`), so the password only ever goes to the certificate the admin accepted, as in the
CLI; then the server and its encrypted password are stored by `add_server`, the CLI's own path.
An http server (the lab's simulator) has no certificate: Connect logs in and stores it. Errors
are shown in words under the form, the detail behind Details. Cancel stores nothing.

The GUI thread never waits on the network; the store is written on it (local SQLite) once the
worker reported.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError, ReplicaDeskError
from core.jobs.servers import (
    PresentedCertificate,
    add_server,
    check_server,
    credential_name,
    read_certificate,
    refuse_duplicate,
)
from core.model.infra import ManagedServer, Protocol, ServerKind
from core.model.secret import Secret
from core.store.store import Store
from gui.infra_dialog import InfraDialog, add_rows, error_detail
from gui.models.infra import KIND_WORDS
from gui.workers import Worker, Workers

DEFAULT_PORTS = {Protocol.HTTPS: 443, Protocol.HTTP: 80}


class ServerConnectWorker(Worker):
    """Reads the certificate of an https server not pinned yet; otherwise logs in once."""

    certificate = Signal(object)  # PresentedCertificate
    loggedIn = Signal(str)  # what answered ("VMware ESXi 8.0.0 build-...")

    def __init__(self, server: ManagedServer, password: Secret) -> None:
        super().__init__()
        self.server = server
        self.password = password

    def work(self) -> None:
        try:
            if self.server.protocol == Protocol.HTTPS and not self.server.thumbprint:
                found = read_certificate(self.server.address, self.server.port)
                if not self.cancelled:
                    self.certificate.emit(found)
                return
            answered = check_server(self.server, self.password)
        except ReplicaDeskError as e:
            self.failed.emit(str(e), error_detail(e))
            return
        if not self.cancelled:
            self.loggedIn.emit(answered)


class AddServerDialog(InfraDialog):
    """New managed server: the form, then (https) the certificate to trust."""

    added = Signal(object)  # the ManagedServer stored
    busyChanged = Signal(bool)  # a worker started (True) or reported (False)
    certificateShown = Signal(object)  # PresentedCertificate, on the alert page

    FORM, CERTIFICATE = range(2)

    def __init__(self, store: Store, workers: Workers, parent: QWidget | None = None) -> None:
        super().__init__("New Managed Server", parent)
        self.store = store
        self.workers = workers
        self.server: ManagedServer | None = None  # as connected to (pinned once trusted)
        self.presented: PresentedCertificate | None = None

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self._form_page())
        self.pages.addWidget(self._certificate_page())

        status_row = self.status_row()

        self.back_button = QPushButton("&Back", self)
        self.connect_button = QPushButton("C&onnect", self)
        self.trust_button = QPushButton("&Trust and Finish", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.connect_button.setDefault(True)
        self.back_button.clicked.connect(self.back)
        self.connect_button.clicked.connect(self.connect_server)
        self.trust_button.clicked.connect(self.trust)
        self.cancel_button.clicked.connect(self.reject)
        buttons = self.button_row(
            self.back_button, self.connect_button, self.trust_button, self.cancel_button
        )

        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        layout.addLayout(status_row)
        layout.addLayout(buttons)
        self._show_page(self.FORM)

    # -- pages -------------------------------------------------------------------------------------

    def _form_page(self) -> QWidget:
        page = QWidget(self)
        intro = QLabel(
            "A vCenter Server, or a standalone ESXi host (the DR site's hosts may be added "
            "directly, so failover works without the production vCenter). The password is "
            "stored encrypted."
        )
        intro.setWordWrap(True)
        self.kind = QComboBox(page)
        for kind in (ServerKind.VCENTER, ServerKind.ESXI):
            self.kind.addItem(KIND_WORDS[kind], kind)
        self.address = QLineEdit(page)
        self.address.setPlaceholderText("vcenter.example.com or 192.0.2.10")
        self.port = QSpinBox(page)
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORTS[Protocol.HTTPS])
        self.protocol = QComboBox(page)
        self.protocol.addItem("HTTPS", Protocol.HTTPS)
        self.protocol.addItem("HTTP (lab simulators only)", Protocol.HTTP)
        self.protocol.currentIndexChanged.connect(self._protocol_changed)
        self.user = QLineEdit(page)
        self.user.setPlaceholderText("administrator@vsphere.local or root")
        self.password = QLineEdit(page)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.description = QLineEdit(page)

        form = QFormLayout()
        rows = (
            ("kind", "T&ype:", self.kind),
            ("address", "&Address:", self.address),
            ("port", "Po&rt:", self.port),
            ("protocol", "&Protocol:", self.protocol),
            ("user", "&User name:", self.user),
            ("password", "Pass&word:", self.password),
            ("description", "De&scription:", self.description),
        )
        add_rows(form, self.errors, ((k, t, w, w) for k, t, w in rows), page)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addStretch(1)
        return page

    def _certificate_page(self) -> QWidget:
        page = QWidget(self)
        icon = QLabel(page)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(48, 48)
        )
        heading = QLabel("Certificate security alert", page)
        heading.setStyleSheet("font-size: 13pt; font-weight: bold")
        self.alert = QLabel(page)
        self.alert.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        words = QVBoxLayout()
        words.addWidget(heading)
        words.addWidget(self.alert)
        top.addLayout(words, 1)
        self.thumbprint = QLabel(page)
        self.thumbprint.setStyleSheet("font-family: monospace")
        self.subject = QLabel(page)
        self.issuer = QLabel(page)
        self.expires = QLabel(page)
        form = QFormLayout()
        for text, label in (
            ("SHA-256 thumbprint:", self.thumbprint),
            ("Issued to:", self.subject),
            ("Issued by:", self.issuer),
            ("Valid until:", self.expires),
        ):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(text, label)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addStretch(1)
        return page

    def _show_page(self, index: int) -> None:
        self.pages.setCurrentIndex(index)
        on_form = index == self.FORM
        self.back_button.setVisible(not on_form)
        self.connect_button.setVisible(on_form)
        self.trust_button.setVisible(not on_form)
        (self.connect_button if on_form else self.trust_button).setDefault(True)
        (self.address if on_form else self.trust_button).setFocus()

    @Slot(int)
    def _protocol_changed(self, _index: int) -> None:
        """The other protocol's default port, unless the admin typed another one."""
        protocol = Protocol(self.protocol.currentData())
        if self.port.value() in DEFAULT_PORTS.values():
            self.port.setValue(DEFAULT_PORTS[protocol])

    # -- the steps ---------------------------------------------------------------------------------

    def built(self) -> ManagedServer | None:
        """The server the form describes, or None with the reason beside its field."""
        self.errors.clear()
        address = self.address.text().strip()
        try:
            server = ManagedServer(
                kind=ServerKind(self.kind.currentData()),
                address=address,
                user=self.user.text().strip(),
                credential=credential_name(address),
                port=self.port.value(),
                protocol=Protocol(self.protocol.currentData()),
                description=self.description.text().strip(),
            )
            if not self.password.text():
                raise InvalidSettingError("password", "give the password of this user")
            refuse_duplicate(self.store, server.address)
        except InvalidSettingError as e:
            self.errors.show(e)
            return None
        except ReplicaDeskError as e:  # already stored
            self.errors.show(InvalidSettingError("address", str(e)))
            return None
        return server

    @Slot()
    def connect_server(self) -> None:
        server = self.built()
        if server is None:
            return
        self.server = server
        self.presented = None
        if server.protocol == Protocol.HTTPS:
            self._start(f"Reading the certificate of {server.address}:{server.port}...")
        else:
            self._start(f"Logging in to {server.address} as {server.user}...")

    @Slot()
    def trust(self) -> None:
        """Pin the certificate shown and log in with it; stored once the login worked."""
        if self.server is None or self.presented is None:
            return
        self.server = dataclasses.replace(self.server, thumbprint=self.presented.thumbprint)
        self._start(f"Logging in to {self.server.address} as {self.server.user}...")

    @Slot()
    def back(self) -> None:
        self.presented = None
        self._say("")
        self._show_page(self.FORM)

    def _start(self, doing: str) -> None:
        assert self.server is not None
        worker = ServerConnectWorker(self.server, Secret(self.password.text()))
        worker.certificate.connect(self._certificate)
        worker.loggedIn.connect(self._logged_in)
        worker.failed.connect(self._failed)
        self.worker = worker
        self._busy(True)
        self._say(doing)
        self.workers.start(worker)

    def _busy(self, busy: bool) -> None:
        for w in (self.pages, self.back_button, self.connect_button, self.trust_button):
            w.setEnabled(not busy)
        self.busyChanged.emit(busy)

    def _mine(self) -> bool:
        """Whether the signal comes from the worker this dialog still waits for."""
        return self.worker is not None and self.sender() is self.worker

    @Slot(object)
    def _certificate(self, presented: PresentedCertificate) -> None:
        if not self._mine() or self.server is None:
            return
        self.worker = None
        self.presented = presented
        where = f"{self.server.address}:{self.server.port}"
        self.alert.setText(
            f"{where} presents a certificate that is not trusted yet. Check its thumbprint with "
            "the server's administrator (vSphere Client: the certificate of the host or of "
            "vCenter) before you trust it: every connection to this server will then check "
            "that it still presents this certificate."
        )
        self.thumbprint.setText(presented.thumbprint)
        self.subject.setText(presented.subject)
        self.issuer.setText(presented.issuer)
        self.expires.setText(f"{presented.not_after:%Y-%m-%d %H:%M} UTC")
        self._say("")
        self._busy(False)
        self._show_page(self.CERTIFICATE)
        self.certificateShown.emit(presented)

    @Slot(str)
    def _logged_in(self, answered: str) -> None:
        if not self._mine() or self.server is None:
            return
        self.worker = None
        try:
            add_server(self.store, self.server, Secret(self.password.text()), check=False)
        except ReplicaDeskError as e:
            self._busy(False)
            self._error(str(e), error_detail(e))
            return
        self._busy(False)
        self._say(f"Added: {answered}")
        self.added.emit(self.server)
        self.accept()

    @Slot(str, str)
    def _failed(self, message: str, detail: str) -> None:
        if not self._mine():
            return
        self.worker = None
        self._busy(False)
        if self.pages.currentIndex() == self.CERTIFICATE:
            self.presented = None
            self._show_page(self.FORM)
        self._error(message, detail)

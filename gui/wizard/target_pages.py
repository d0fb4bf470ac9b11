"""Where replicas go, and how their networks and addresses change: the Destination, Network
and Re-IP steps.

Every picker is filled from the target server's inventory, read on a worker when the server is
chosen (the page says so while it reads, and the pickers stay empty until it arrives). A stored
job's choices are selected again by managed object ID; an object that is gone from the target
stays in its picker, marked, so the job still says what it said and the reason is visible.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core.errors import InvalidSettingError, ReIpError
from core.model.destination import Destination, DiskType, Placement, VmOverride
from core.model.job import ReplicationJob
from core.model.network import NetworkMap, NetworkMapping
from core.model.objects import ObjectKind, ObjectRef
from core.model.reip import ReIpRule, check_rules, reip
from core.vsphere.models import Inventory
from gui import format as fmt
from gui.wizard.base import WizardPage
from gui.wizard.fields import ERROR_STYLE, after_cell, built, mark_invalid, with_error

if TYPE_CHECKING:
    from gui.wizard.wizard import JobWizard

DISK_WORDS = {
    DiskType.SAME: "Same as source",
    DiskType.THIN: "Thin provisioned",
    DiskType.THICK: "Thick provisioned",
}
JOB_CHOICE = "(the job's choice)"


# -- pickers ---------------------------------------------------------------------------------------


def fill_combo(combo: QComboBox, items: Sequence[tuple[str, object]], keep: object = None) -> None:
    """Replace a picker's items, keeping the current choice (by moref) when it is still there."""
    current = combo.currentData() if keep is None else keep
    combo.blockSignals(True)
    combo.clear()
    for text, data in items:
        combo.addItem(text, data)
    combo.blockSignals(False)
    select(combo, current)
    combo.currentIndexChanged.emit(combo.currentIndex())


def select(combo: QComboBox, data: object) -> None:
    """Select the item holding `data` (ObjectRefs match by moref); a missing ref is added,
    marked as not found, so a stored job's choice is never silently replaced."""
    if data is None:
        if combo.count():
            found = next((i for i in range(combo.count()) if combo.itemData(i) is None), 0)
            combo.setCurrentIndex(found)
        return
    for i in range(combo.count()):
        item = combo.itemData(i)
        same = (
            item.moref == data.moref
            if isinstance(item, ObjectRef) and isinstance(data, ObjectRef)
            else item == data
        )
        if same:
            combo.setCurrentIndex(i)
            return
    if isinstance(data, ObjectRef):
        combo.addItem(f"{data.name} (not found at the target)", data)
        combo.setCurrentIndex(combo.count() - 1)


def _ref(kind: ObjectKind, moref: str, name: str) -> ObjectRef:
    return ObjectRef(kind, moref, name)


class DestinationPage(WizardPage):
    step = "Destination"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Destination")
        self.setSubTitle(
            "Choose where replicas are created: a host or cluster of the DR site, its resource "
            "pool, VM folder and datastore. Override them for single VMs below."
        )
        self._pending: Destination | None = None
        self.server = QComboBox()
        for s in wizard.context.servers:
            self.server.addItem(f"{s.address} ({s.description or s.kind})", s.address)
        self.server.setCurrentIndex(-1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.target = QComboBox()
        self.pool = QComboBox()
        self.folder = QComboBox()
        self.datastore = QComboBox()
        self.disk_type = QComboBox()
        for kind, words in DISK_WORDS.items():
            self.disk_type.addItem(words, kind)
        # Every picker as wide as the form: their width never jumps with their contents.
        for combo in (self.server, self.target, self.pool, self.folder, self.datastore):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(28)
        form = QFormLayout()
        paths = [
            ("&Server:", self.server, "destination.server"),
            ("&Host or cluster:", self.target, "destination.placement.target"),
            ("&Resource pool:", self.pool, "destination.placement.resource_pool"),
            ("VM &folder:", self.folder, "destination.placement.folder"),
            ("&Datastore:", self.datastore, "destination.placement.datastore"),
            ("Disk &type:", self.disk_type, "destination.placement.disk_type"),
        ]
        for text, widget, path in paths:
            box, error = with_error(widget)
            form.addRow(text, box)
            self.errors.add(path, widget, error)
        form.addRow("", self.status)

        self.overrides = QTableWidget(0, 5)
        self.overrides.setHorizontalHeaderLabels(
            ["VM", "Datastore", "Resource pool", "VM folder", "Disk type"]
        )
        self.overrides.verticalHeader().hide()
        self.overrides.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.overrides.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.override_vm = QComboBox()
        self.override_vm.setMinimumContentsLength(20)
        add = QPushButton("&Add override")
        add.clicked.connect(self.add_override)
        remove = QPushButton("Re&move")
        remove.clicked.connect(self._remove_override)
        overrides_box, overrides_error = with_error(self.overrides)
        self.errors.add("destination.overrides", self.overrides, overrides_error)
        row = QHBoxLayout()
        row.addWidget(QLabel("For VM:"))
        row.addWidget(self.override_vm, 1)
        row.addWidget(add)
        row.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        title = QLabel("Per-VM placement")
        title.setStyleSheet("font-weight: bold")
        layout.addWidget(title)
        layout.addWidget(overrides_box, 1)
        layout.addLayout(row)

        self.server.currentIndexChanged.connect(self._server_chosen)
        self.target.currentIndexChanged.connect(self._target_chosen)
        wizard.inventoryArrived.connect(self._inventory_arrived)

    # -- inventory --------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        data = self.server.currentData()
        return data if isinstance(data, str) else ""

    @property
    def inventory(self) -> Inventory | None:
        return self.job_wizard.inventories.get(self.address)

    def initializePage(self) -> None:
        if self.server.currentIndex() < 0:
            source = self.job_wizard.vms_page.objects.server
            others = [i for i in range(self.server.count()) if self.server.itemData(i) != source]
            self.server.setCurrentIndex(others[0] if others else 0)
        self.refresh_vms()

    def _server_chosen(self) -> None:
        address = self.address
        if not address:
            return
        self.job_wizard.request_inventory(address, fresh=True)
        self._show_inventory()

    def _inventory_arrived(self, address: str) -> None:
        if address == self.address:
            self._show_inventory()

    def _show_inventory(self) -> None:
        inv = self.inventory
        address = self.address
        if address in self.job_wizard.loading:
            self.status.setText(f"Reading the inventory of {address}...")
            self.status.setStyleSheet("")
        elif address in self.job_wizard.inventory_errors:
            self.status.setText(self.job_wizard.inventory_errors[address])
            self.status.setStyleSheet(ERROR_STYLE)
        elif inv is not None:
            self.status.setText(
                f"{len(inv.hosts)} host(s), {len(inv.datastores)} datastore(s), "
                f"{len(inv.networks)} network(s) at {address}"
            )
            self.status.setStyleSheet("")
        pending = self._pending
        targets: list[tuple[str, object]] = []
        if inv is not None:
            for c in sorted(inv.clusters, key=lambda c: c.name.casefold()):
                targets.append(
                    (
                        f"{c.name} (cluster of {len(c.hosts)} hosts)",
                        _ref(ObjectKind.CLUSTER, c.moref, c.name),
                    )
                )
            for h in sorted(inv.hosts, key=lambda h: h.name.casefold()):
                where = "host" if not h.cluster else f"host in {inv.cluster(h.cluster).name}"
                state = "" if h.connected else f", {h.connection_state}"
                targets.append(
                    (f"{h.name} ({where}{state})", _ref(ObjectKind.HOST, h.moref, h.name))
                )
        keep = pending.placement.target if pending is not None else None
        fill_combo(self.target, targets, keep)
        if pending is not None and inv is not None:
            p = pending.placement
            select(self.pool, p.resource_pool)
            select(self.folder, p.folder)
            select(self.datastore, p.datastore)
            select(self.disk_type, p.disk_type)
            self._pending = None
            self._fill_overrides(pending)
        self.refresh_vms()

    def _hosts(self) -> list[str]:
        inv, ref = self.inventory, self.target.currentData()
        if inv is None or not isinstance(ref, ObjectRef) or not inv.has(ref.moref):
            return []
        if ref.kind == ObjectKind.CLUSTER:
            return list(inv.cluster(ref.moref).hosts)
        return [ref.moref]

    def _target_chosen(self) -> None:
        inv, ref = self.inventory, self.target.currentData()
        pools: list[tuple[str, object]] = [("(the root resource pool)", None)]
        folders: list[tuple[str, object]] = [("(the datacenter's VM folder)", None)]
        datastores: list[tuple[str, object]] = []
        if inv is not None and isinstance(ref, ObjectRef) and inv.has(ref.moref):
            if ref.kind == ObjectKind.CLUSTER:
                cluster = inv.cluster(ref.moref)
                root, dc = cluster.resource_pool, cluster.datacenter
            else:
                host = inv.host(ref.moref)
                root, dc = host.resource_pool, host.datacenter
            owner = inv.resource_pool(root).owner if inv.has(root) else ""
            for p in sorted(inv.resource_pools, key=lambda p: p.path):
                if p.owner == owner and p.parent:
                    pools.append(
                        ("/".join(p.path), _ref(ObjectKind.RESOURCE_POOL, p.moref, p.name))
                    )
            for f in sorted(inv.folders, key=lambda f: f.path):
                if f.datacenter == dc and f.path:
                    folders.append((f.path_text, _ref(ObjectKind.FOLDER, f.moref, f.name)))
            hosts = set(self._hosts())
            for d in sorted(inv.datastores, key=lambda d: d.name.casefold()):
                if hosts & set(d.hosts) and d.accessible:
                    text = f"{d.name} ({fmt.size(d.free)} free of {fmt.size(d.capacity)})"
                    datastores.append((text, _ref(ObjectKind.DATASTORE, d.moref, d.name)))
        fill_combo(self.pool, pools)
        fill_combo(self.folder, folders)
        fill_combo(self.datastore, datastores)
        for row in range(self.overrides.rowCount()):
            self._fill_override_pickers(row)

    # -- per-VM overrides -------------------------------------------------------------------------

    def refresh_vms(self) -> None:
        vms = self.job_wizard.vms_page.covered_vms()
        current = self.override_vm.currentData()
        self.override_vm.clear()
        for v in vms:
            self.override_vm.addItem(v.vm.name, _ref(ObjectKind.VM, v.vm.moref, v.vm.name))
        select(self.override_vm, current if isinstance(current, ObjectRef) else None)

    def _cell_combo(self, row: int, column: int) -> QComboBox:
        widget = self.overrides.cellWidget(row, column)
        assert isinstance(widget, QComboBox)
        return widget

    def _fill_override_pickers(self, row: int) -> None:
        for column, source in ((1, self.datastore), (2, self.pool), (3, self.folder)):
            items: list[tuple[str, object]] = [(JOB_CHOICE, None)]
            items += [
                (source.itemData(i).name, source.itemData(i))
                for i in range(source.count())
                if isinstance(source.itemData(i), ObjectRef)
            ]
            fill_combo(self._cell_combo(row, column), items)

    def add_override(self, vm: ObjectRef | None = None) -> int:
        ref = vm if isinstance(vm, ObjectRef) else self.override_vm.currentData()
        if not isinstance(ref, ObjectRef):
            return -1
        row = self.overrides.rowCount()
        self.overrides.insertRow(row)
        item = QTableWidgetItem(ref.name)
        item.setData(Qt.ItemDataRole.UserRole, ref)
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        self.overrides.setItem(row, 0, item)
        for column in (1, 2, 3, 4):
            self.overrides.setCellWidget(row, column, QComboBox())
            after_cell(self.overrides, row, column)
        disk = self._cell_combo(row, 4)
        disk.addItem(JOB_CHOICE, None)
        for kind, words in DISK_WORDS.items():
            disk.addItem(words, kind)
        self._fill_override_pickers(row)
        return row

    def _remove_override(self) -> None:
        for row in sorted({i.row() for i in self.overrides.selectedIndexes()}, reverse=True):
            self.overrides.removeRow(row)

    def _fill_overrides(self, destination: Destination) -> None:
        self.overrides.setRowCount(0)
        for o in destination.overrides:
            row = self.add_override(o.vm)
            select(self._cell_combo(row, 1), o.datastore)
            select(self._cell_combo(row, 2), o.resource_pool)
            select(self._cell_combo(row, 3), o.folder)
            select(self._cell_combo(row, 4), o.disk_type)

    def _override(self, row: int) -> VmOverride:
        item = self.overrides.item(row, 0)
        vm = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        assert isinstance(vm, ObjectRef)  # set by add_override
        combos = [self._cell_combo(row, c).currentData() for c in (1, 2, 3)]
        disk = self._cell_combo(row, 4).currentData()
        disk_type = DiskType(disk) if disk is not None else None
        return built(
            f"destination.overrides[{row}]",
            lambda: VmOverride(vm, combos[0], combos[1], combos[2], disk_type),
        )

    # -- the destination --------------------------------------------------------------------------

    def destination(self) -> Destination:
        if not self.address:
            raise InvalidSettingError("destination.server", "choose the DR site's server")
        pending = self._pending
        if pending is not None and pending.server == self.address:
            return pending  # the stored job's, while the target's inventory is read
        target, datastore = self.target.currentData(), self.datastore.currentData()
        reading = self.address in self.job_wizard.loading
        if not isinstance(target, ObjectRef):
            raise InvalidSettingError(
                "destination.placement.target",
                "wait: the server's inventory is being read"
                if reading
                else "choose a host or cluster",
            )
        if not isinstance(datastore, ObjectRef):
            raise InvalidSettingError(
                "destination.placement.datastore",
                "choose a datastore the host or cluster can reach",
            )
        pool, folder, disk = (
            self.pool.currentData(),
            self.folder.currentData(),
            DiskType(self.disk_type.currentData()),
        )
        placement = built(
            "destination.placement", lambda: Placement(target, datastore, pool, folder, disk)
        )
        overrides = tuple(self._override(r) for r in range(self.overrides.rowCount()))
        return built("destination", lambda: Destination(self.address, placement, overrides))

    def check(self) -> None:
        self.destination()

    def fill(self, job: ReplicationJob) -> None:
        self._pending = job.destination
        index = self.server.findData(job.destination.server)
        self.server.setCurrentIndex(index)  # -> reads the inventory; pickers follow


# -- network mapping -------------------------------------------------------------------------------


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", name.casefold()))


def suggest(source: str, targets: Collection[str]) -> str:
    """The target network for `source`: the same name, else the one name sharing the most
    words with it ("Prod App" -> "DR App", "pg-db [tier 2]" -> "DR DB"), else none."""
    if source in targets:
        return source
    scores = sorted(((len(_words(source) & _words(t)), t) for t in targets), reverse=True)
    if not scores or scores[0][0] == 0 or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return ""
    return scores[0][1]


def _mapping(row: int, source: str, target: str) -> NetworkMapping:
    return built(f"network.mappings[{row}]", lambda: NetworkMapping(source, target))


class NetworkPage(WizardPage):
    step = "Network"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Network")
        self.setSubTitle(
            "Map each production network to a network of the DR site. A NIC whose network has "
            "no mapping is disconnected on the replica."
        )
        self.same_name = QCheckBox("Networks with the &same name at the target map automatically")
        self.same_name.setChecked(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Source network", "Target network"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table_box, table_error = with_error(self.table)
        self.errors.add("network", self.table, table_error, describe=self._describe)
        add = QPushButton("&Add")
        add.clicked.connect(lambda: self.add_row())
        remove = QPushButton("&Remove")
        remove.clicked.connect(self._remove)
        fill = QPushButton("Add the VMs' ne&tworks")
        fill.setToolTip("A row for every network a NIC of the job's VMs is on")
        fill.clicked.connect(self.add_vm_networks)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (add, remove, fill):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.same_name)
        layout.addWidget(table_box, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notes)
        self.same_name.toggled.connect(self.update_notes)
        wizard.inventoryArrived.connect(lambda _a: self._refresh_pickers())

    def _cell_of(self, path: str) -> tuple[int, int] | None:
        """`network.mappings[1].target` -> (row 1, the Target network column)."""
        head = "network.mappings["
        if not path.startswith(head):
            return None
        index, _, rest = path[len(head) :].partition("]")
        if not index.isdigit():
            return None
        return int(index), 1 if rest.lstrip(".").startswith("target") else 0

    def _describe(self, error: InvalidSettingError) -> str:
        cell = self._cell_of(error.field)
        if cell is None:
            return error.problem
        column = "target network" if cell[1] else "source network"
        return f"Row {cell[0] + 1}, {column}: {error.problem}"

    def show_error(self, error: InvalidSettingError) -> QLabel | None:
        for r in range(self.table.rowCount()):
            for c in (0, 1):
                mark_invalid(self._combo(r, c), False)
        label = super().show_error(error)
        cell = self._cell_of(error.field)
        if cell is not None and cell[0] < self.table.rowCount():
            combo = self._combo(*cell)
            mark_invalid(combo, True)
            combo.setFocus()
        return label

    def invalid_cell(self) -> tuple[int, int] | None:
        for r in range(self.table.rowCount()):
            for c in (0, 1):
                if self._combo(r, c).property("invalid") == "true":
                    return r, c
        return None

    def _source_networks(self) -> list[str]:
        used: list[str] = []
        for v in self.job_wizard.vms_page.covered_vms():
            for nic in v.vm.nics:
                if nic.network_name and nic.network_name not in used:
                    used.append(nic.network_name)
        inv = self.job_wizard.inventories.get(self.job_wizard.vms_page.objects.server)
        others = sorted({n.name for n in inv.networks} - set(used)) if inv is not None else []
        return used + others

    def _target_networks(self) -> list[str]:
        inv = self.job_wizard.destination_page.inventory
        return sorted({n.name for n in inv.networks}) if inv is not None else []

    def _combo(self, row: int, column: int) -> QComboBox:
        widget = self.table.cellWidget(row, column)
        assert isinstance(widget, QComboBox)
        return widget

    def add_row(self, source: str = "", target: str = "") -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column in (0, 1):
            combo = QComboBox()
            combo.setEditable(True)
            combo.currentTextChanged.connect(self.update_notes)
            self.table.setCellWidget(row, column, combo)
            after_cell(self.table, row, column)
        self._fill_row(row, source, target)
        return row

    def _fill_row(self, row: int, source: str, target: str) -> None:
        for column, names, text in (
            (0, self._source_networks(), source),
            (1, self._target_networks(), target),
        ):
            combo = self._combo(row, column)
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentText(text)
            combo.blockSignals(False)
        self.update_notes()

    def _refresh_pickers(self) -> None:
        for row in range(self.table.rowCount()):
            self._fill_row(
                row, self._combo(row, 0).currentText(), self._combo(row, 1).currentText()
            )

    def _remove(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self.update_notes()

    def add_vm_networks(self) -> None:
        present = {self._combo(r, 0).currentText() for r in range(self.table.rowCount())}
        targets = set(self._target_networks())
        for v in self.job_wizard.vms_page.covered_vms():
            for nic in v.vm.nics:
                name = nic.network_name
                if name and name not in present:
                    present.add(name)
                    self.add_row(name, suggest(name, targets))

    def mappings(self) -> NetworkMap:
        rows = []
        for r in range(self.table.rowCount()):
            source, target = self._combo(r, 0).currentText(), self._combo(r, 1).currentText()
            rows.append(_mapping(r, source, target))
        same = self.same_name.isChecked()
        return built("network", lambda: NetworkMap(tuple(rows), same))

    def network_map(self) -> NetworkMap:
        """The job's map: this page's when its step is on, else same-name mapping only."""
        return self.mappings() if self.job_wizard.name_page.network.isChecked() else NetworkMap()

    def update_notes(self) -> None:
        try:
            mapping = self.mappings()
        except InvalidSettingError:
            self.notes.setText("")
            return
        targets = set(self._target_networks())
        unmapped: list[str] = []
        missing: list[str] = []
        for v in self.job_wizard.vms_page.covered_vms():
            for nic in v.vm.nics:
                to = mapping.target_for(nic.network_name, targets)
                if to is None:
                    unmapped.append(f"{v.vm.name} ({nic.network_name or 'no network'})")
                elif targets and to not in targets and to not in missing:
                    missing.append(to)
        notes = []
        if unmapped:
            notes.append("Disconnected on the replica (no mapping): " + ", ".join(unmapped))
        if missing:
            notes.append(
                "Not found at the target (the run will stop before copying): " + ", ".join(missing)
            )
        self.notes.setText("\n".join(notes))
        self.notes.setStyleSheet(ERROR_STYLE if notes else "")

    def initializePage(self) -> None:
        self._refresh_pickers()
        if self.table.rowCount() == 0:
            self.add_vm_networks()
        self.update_notes()

    def check(self) -> None:
        self.mappings()

    def fill(self, job: ReplicationJob) -> None:
        self.same_name.setChecked(job.network.same_name)
        self.table.setRowCount(0)
        for m in job.network.mappings:
            self.add_row(m.source, m.target)


# -- re-IP -----------------------------------------------------------------------------------------

REIP_COLUMNS = (
    ("source", "Source IP"),
    ("source_mask", "Source mask"),
    ("target", "Target IP"),
    ("target_mask", "Target mask"),
    ("gateway", "Gateway"),
    ("dns", "DNS servers"),
    ("wins", "WINS servers"),
    ("description", "Description"),
)
INVALID_CELL = QColor(0xFF, 0xCD, 0xD2)


def _servers(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.replace(";", ",").split(",") if part.strip())


def _rule(row: int, v: dict[str, str]) -> ReIpRule:
    return built(
        f"reip[{row}]",
        lambda: ReIpRule(
            source=v["source"],
            target=v["target"],
            source_mask=v["source_mask"] or None,
            target_mask=v["target_mask"] or None,
            gateway=v["gateway"] or None,
            dns=_servers(v["dns"]),
            wins=_servers(v["wins"]),
            description=v["description"],
        ),
    )


class ReIpPage(WizardPage):
    step = "Re-IP"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Re-IP")
        self.setSubTitle(
            "Rules that give failed-over replicas addresses of the DR site. The source may use "
            "* octets (172.17.*.*) or CIDR (172.17.0.0/16); the target keeps the * octets of "
            "the VM's address. The first matching rule applies."
        )
        self.table = QTableWidget(0, len(REIP_COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _k, title in REIP_COLUMNS])
        self.table.verticalHeader().setVisible(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        table_box, table_error = with_error(self.table)
        self.errors.add("reip", self.table, table_error, describe=self._describe)
        add = QPushButton("&Add rule")
        add.clicked.connect(lambda: self.add_rule())
        remove = QPushButton("&Remove")
        remove.clicked.connect(self._remove)
        up = QPushButton("&Up")
        up.clicked.connect(lambda: self._shift(-1))
        down = QPushButton("Do&wn")
        down.clicked.connect(lambda: self._shift(1))
        self.probe = QLineEdit()
        self.probe.setPlaceholderText("an address of a VM, e.g. 172.17.4.20")
        self.probe_result = QLabel("")
        self.probe.textChanged.connect(self._try)
        buttons = QHBoxLayout()
        for b in (add, remove, up, down):
            buttons.addWidget(b)
        buttons.addStretch(1)
        probe = QHBoxLayout()
        probe_label = QLabel("&Try an address:")
        probe_label.setBuddy(self.probe)
        probe.addWidget(probe_label)
        probe.addWidget(self.probe)
        probe.addWidget(self.probe_result, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(table_box, 1)
        layout.addLayout(buttons)
        layout.addLayout(probe)
        self.table.itemChanged.connect(lambda _i: self._try())

    def add_rule(self, values: dict[str, str] | None = None) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column, (key, _title) in enumerate(REIP_COLUMNS):
            self.table.setItem(row, column, QTableWidgetItem((values or {}).get(key, "")))
        self.table.setCurrentCell(row, 0)
        return row

    def set_cell(self, row: int, key: str, text: str) -> None:
        column = [k for k, _t in REIP_COLUMNS].index(key)
        item = self.table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(row, column, item)
        item.setText(text)

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text().strip() if item is not None else ""

    def _rows(self) -> list[dict[str, str]]:
        return [
            {key: self._text(r, c) for c, (key, _t) in enumerate(REIP_COLUMNS)}
            for r in range(self.table.rowCount())
        ]

    def _remove(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    def _shift(self, step: int) -> None:
        row = self.table.currentRow()
        other = row + step
        if row < 0 or not 0 <= other < self.table.rowCount():
            return
        rows = self._rows()
        rows[row], rows[other] = rows[other], rows[row]
        self._set_rows(rows)
        self.table.setCurrentCell(other, 0)

    def _set_rows(self, rows: list[dict[str, str]]) -> None:
        self.table.setRowCount(0)
        for values in rows:
            self.add_rule(values)

    def rules(self) -> tuple[ReIpRule, ...]:
        rules = tuple(_rule(i, v) for i, v in enumerate(self._rows()))
        built("reip", lambda: check_rules(rules))
        return rules

    def job_rules(self) -> tuple[ReIpRule, ...]:
        return self.rules() if self.job_wizard.name_page.reip.isChecked() else ()

    def _cell_of(self, path: str) -> tuple[int, int] | None:
        """`reip[2].gateway` -> (row 2, the Gateway column); `reip[2]` -> (2, Source IP)."""
        if not path.startswith("reip["):
            return None
        index, _, rest = path[len("reip[") :].partition("]")
        if not index.isdigit():
            return None
        key = rest.lstrip(".").split("[")[0] or "source"
        keys = [k for k, _t in REIP_COLUMNS]
        return int(index), keys.index(key) if key in keys else 0

    def _describe(self, error: InvalidSettingError) -> str:
        cell = self._cell_of(error.field)
        if cell is None:
            return error.problem
        title = REIP_COLUMNS[cell[1]][1]
        return f"Rule {cell[0] + 1}, {title}: {error.problem}"

    def show_error(self, error: InvalidSettingError) -> QLabel | None:
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                if item is not None:
                    item.setBackground(QColor(0, 0, 0, 0))
        label = super().show_error(error)
        cell = self._cell_of(error.field)
        if cell is not None and cell[0] < self.table.rowCount():
            item = self.table.item(*cell)
            if item is not None:
                item.setBackground(INVALID_CELL)
            self.table.setCurrentCell(*cell)
            self.table.clearSelection()  # the red cell stays visible; the focus frame is on it
        return label

    def invalid_cell(self) -> tuple[int, int] | None:
        """The cell marked invalid (tests)."""
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                if item is not None and item.background().color() == INVALID_CELL:
                    return r, c
        return None

    def _try(self) -> None:
        address = self.probe.text().strip()
        if not address:
            self.probe_result.setText("")
            return
        try:
            result = reip(self.rules(), address)
        except InvalidSettingError as e:
            self.probe_result.setText(self._describe(e))
            return
        except ReIpError as e:
            self.probe_result.setText(str(e))
            return
        if result is None:
            self.probe_result.setText("no rule matches: the address stays")
            return
        mask = result.netmask or f"/{result.prefix_length}"
        gateway = f", gateway {result.gateway}" if result.gateway else ""
        self.probe_result.setText(f"rule {result.rule_index + 1}: {result.address} {mask}{gateway}")

    def check(self) -> None:
        self.rules()

    def fill(self, job: ReplicationJob) -> None:
        self._set_rows(
            [
                {
                    "source": r.source,
                    "source_mask": r.source_mask or "",
                    "target": r.target,
                    "target_mask": r.target_mask or "",
                    "gateway": r.gateway or "",
                    "dns": ", ".join(r.dns),
                    "wins": ", ".join(r.wins),
                    "description": r.description,
                }
                for r in job.reip
            ]
        )

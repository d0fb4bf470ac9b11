"""The wizard's first two steps: Name (with the checkboxes that add optional steps) and
Virtual machines (what to replicate, in what order, minus what to leave out).

VMs and containers come by drag and drop: from the inventory tree on the page, or from the
main window's Inventory view (the same `MIME_OBJECTS` payload), or with the Add button. The
list's order is the processing order (drag rows to change it). Exclusions: VMs inside the
added containers, and disks of any VM the job covers (unticked disks are not replicated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError
from core.jobs.sources import SourceVm, expand
from core.model import fields
from core.model.job import ReplicationJob
from core.model.objects import DiskExclusion, ObjectKind, ObjectRef, SourceSelection
from gui import format as fmt
from gui.models.inventory import DraggedObject, InventoryModel, Node, NodeKind
from gui.views.inventory import InventoryView
from gui.wizard.base import WizardPage
from gui.wizard.fields import built, with_error
from gui.wizard.objects import ObjectListModel, ObjectListView

if TYPE_CHECKING:
    from gui.wizard.wizard import JobWizard

NODE_KINDS = {
    NodeKind.VM: ObjectKind.VM,
    NodeKind.FOLDER: ObjectKind.FOLDER,
    NodeKind.HOST: ObjectKind.HOST,
    NodeKind.CLUSTER: ObjectKind.CLUSTER,
    NodeKind.DATACENTER: ObjectKind.DATACENTER,
}
DISK_ROLE = Qt.ItemDataRole.UserRole + 1  # (vm moref, disk key) of a disk item


class NamePage(WizardPage):
    step = "Name"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Name")
        self.setSubTitle("Type a name and description for this replication job.")
        self.name = QLineEdit()
        self.name.setPlaceholderText("Replication Job 1")
        self.description = QPlainTextEdit()
        self.description.setPlaceholderText("What this job protects, and why")
        self.description.setTabChangesFocus(True)
        self.description.setMaximumHeight(90)
        self.network = QCheckBox(
            "Net&work remapping (for DR sites with different virtual networks)"
        )
        self.reip = QCheckBox("Replica &re-IP (for DR sites with different IP addressing schemes)")
        self.seeding = QCheckBox("Replica &seeding (to map VMs to existing VMs at the DR site)")
        for box in (self.seeding, self.network, self.reip):
            box.toggled.connect(wizard.steps_changed)
        form = QFormLayout()
        page = QVBoxLayout(self)
        page.addLayout(form)
        page.addStretch(1)
        name_box, name_error = with_error(self.name)
        desc_box, desc_error = with_error(self.description)
        form.addRow("Na&me:", name_box)
        form.addRow("&Description:", desc_box)
        advanced = QLabel("Show advanced steps for:")
        form.addRow(advanced)
        form.addRow(self.seeding)
        form.addRow(self.network)
        form.addRow(self.reip)
        self.errors.add("name", self.name, name_error)
        self.errors.add("description", self.description, desc_error)
        self.name.textChanged.connect(lambda _t: self.completeChanged.emit())

    def check(self) -> None:
        name = built("", lambda: fields.name("name", self.name.text(), max_len=128))
        built("", lambda: fields.text("description", self.description.toPlainText()))
        editing = self.job_wizard.original
        if (editing is None or editing.name != name) and name in self.job_wizard.context.jobs:
            raise InvalidSettingError("name", f"a job named {fields.show(name)} exists already")

    def fill(self, job: ReplicationJob) -> None:
        self.name.setText(job.name)
        self.name.setReadOnly(True)
        self.name.setToolTip("A job's name is its identity: its sessions and replicas refer to it")
        self.description.setPlainText(job.description)
        self.network.setChecked(bool(job.network.mappings) or not job.network.same_name)
        self.reip.setChecked(bool(job.reip))
        self.seeding.setChecked(bool(job.seeding.mappings))


def _bold(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold")
    return label


class VmsPage(WizardPage):
    step = "Virtual Machines"

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Virtual Machines")
        self.setSubTitle(
            "Drag VMs or containers (folders, hosts, clusters, datacenters) onto the list; "
            "VMs are processed in the list's order. Containers pick up VMs added later."
        )
        self.inventory_model = InventoryModel(self)
        self.tree = InventoryView(self.inventory_model)
        self.tree.details.setMaximumHeight(110)
        self.objects = ObjectListModel(NODE_KINDS.values(), self)
        self.objects_view = ObjectListView(self.objects)
        self.excluded = ObjectListModel({ObjectKind.VM}, self)
        self.excluded_view = ObjectListView(self.excluded)
        self.disks = QTreeWidget()
        self.disks.setHeaderLabels(["VM and its disks (untick a disk to leave it out)", "Size"])
        self.disks.setUniformRowHeights(True)
        self.disks.header().setStretchLastSection(False)
        self.disks.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.disks.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.disks.itemChanged.connect(self._disk_ticked)
        self._excluded_disks: dict[str, set[int]] = {}  # VM moref -> device keys left out
        self._container_disks: tuple[DiskExclusion, ...] = ()  # kept from a stored job
        self._disk_names: dict[str, str] = {}  # VM moref -> name, of a stored job's exclusions

        add = QPushButton("&Add >")
        add.setToolTip("Add the VMs and containers selected in the tree")
        add.clicked.connect(self.add_selected)
        remove = QPushButton("Remo&ve")
        remove.clicked.connect(lambda: self.objects.remove(self.objects_view.selected_rows()))
        up = QPushButton("&Up")
        up.clicked.connect(lambda: self._shift(-1))
        down = QPushButton("Do&wn")
        down.clicked.connect(lambda: self._shift(1))
        exclude = QPushButton("E&xclude >")
        exclude.setToolTip("Leave the VMs selected in the tree out of the job's containers")
        exclude.clicked.connect(self.exclude_selected)
        unexclude = QPushButton("Re&move")
        unexclude.clicked.connect(lambda: self.excluded.remove(self.excluded_view.selected_rows()))

        objects_box, objects_error = with_error(self.objects_view)
        excluded_box, excluded_error = with_error(self.excluded_view)
        disks_box, disks_error = with_error(self.disks)
        self.errors.add("source", self.objects_view, objects_error)
        self.errors.add("source.exclude_vms", self.excluded_view, excluded_error)
        self.errors.add("source.exclude_disks", self.disks, disks_error)
        self.drop_note = objects_error

        objects_tab = QWidget()
        ot = QVBoxLayout(objects_tab)
        ot.addWidget(objects_box, 1)
        row = QHBoxLayout()
        for b in (add, remove, up, down):
            row.addWidget(b)
        row.addStretch(1)
        ot.addLayout(row)
        exclusions_tab = QWidget()
        et = QVBoxLayout(exclusions_tab)
        et.addWidget(_bold("Virtual machines left out of the containers"))
        et.addWidget(excluded_box, 1)
        row2 = QHBoxLayout()
        row2.addWidget(exclude)
        row2.addWidget(unexclude)
        row2.addStretch(1)
        et.addLayout(row2)
        et.addWidget(_bold("Disks"))
        et.addWidget(disks_box, 2)
        self.tabs = QTabWidget()
        self.tabs.addTab(objects_tab, "&Objects to replicate")
        self.tabs.addTab(exclusions_tab, "Exclusion&s")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.tabs, 1)
        self.totals = QLabel("")
        rl.addWidget(self.totals)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(_bold("Inventory"))
        ll.addWidget(self.tree, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self.objects.changed.connect(self._changed)
        self.excluded.changed.connect(self._changed)
        self.objects.refused.connect(self._refused)
        self.excluded.refused.connect(self._refused)
        self.tree.tree.doubleClicked.connect(lambda _i: self.add_selected())

    # -- inventories ------------------------------------------------------------------------------

    def set_inventories(self) -> None:
        """Show the inventories the wizard has (called whenever one arrives)."""
        inventories = self.job_wizard.inventories
        for address, inv in inventories.items():
            if self.inventory_model.inventories.get(address) is not inv:
                self.inventory_model.set_inventory(address, inv)
        for address, message in self.job_wizard.inventory_errors.items():
            if address not in inventories:
                self.inventory_model.set_error(address, message)
        self.objects.set_inventories(inventories)
        self.excluded.set_inventories(inventories)
        self._changed()

    # -- gestures ---------------------------------------------------------------------------------

    def _tree_objects(self) -> list[DraggedObject]:
        out = []
        for node in self.tree.selected_nodes():
            if node.draggable and node.kind in NODE_KINDS:
                out.append(DraggedObject(node.server, _ref(node)))
        return out

    def add_selected(self) -> None:
        self.objects.add(self._tree_objects())

    def exclude_selected(self) -> None:
        self.excluded.add([o for o in self._tree_objects() if o.ref.kind == ObjectKind.VM])

    def _shift(self, step: int) -> None:
        rows = self.objects_view.selected_rows()
        if not rows:
            return
        target = rows[0] - 1 if step < 0 else rows[-1] + 2
        first = self.objects.move(rows, max(0, target))
        selection = self.objects_view.selectionModel()
        for r in range(first, first + len(rows)):
            index = self.objects.index(r, 0)
            selection.select(
                index,
                selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
            )

    def _refused(self, reason: str) -> None:
        self.drop_note.setText(reason)
        self.drop_note.show()

    # -- the selection ----------------------------------------------------------------------------

    def _disk_exclusions(self) -> tuple[DiskExclusion, ...]:
        covered = {v.vm.moref: v.vm.name for v in self.covered_vms(with_disks=False)}
        # Before the source inventory is read, a stored job's exclusions stay as they were.
        known = self.objects.server in self.job_wizard.inventories
        names = covered if known else {**self._disk_names, **covered}
        out = list(self._container_disks)
        for moref, keys in self._excluded_disks.items():
            if keys and moref in names:
                ref = ObjectRef(ObjectKind.VM, moref, names[moref])
                out.append(DiskExclusion(ref, tuple(sorted(keys))))
        return tuple(out)

    def selection(self, with_disks: bool = True) -> SourceSelection:
        if not self.objects.items:
            raise InvalidSettingError(
                "source.objects",
                "add at least one VM or container: drag them here from the inventory",
            )
        server = self.objects.server
        excluded = tuple(o.ref for o in self.excluded.items if o.server == server)
        disks = self._disk_exclusions() if with_disks else ()
        return built(
            "source", lambda: SourceSelection(server, self.objects.refs(), excluded, disks)
        )

    def covered_vms(self, with_disks: bool = True) -> list[SourceVm]:
        """The VMs the job would replicate now (containers expanded, exclusions applied)."""
        try:
            selection = self.selection(with_disks)
        except InvalidSettingError:
            return []
        inv = self.job_wizard.inventories.get(selection.server)
        return list(expand(selection, inv).vms) if inv is not None else []

    def check(self) -> None:
        self.selection()
        others = [o for o in self.excluded.items if o.server != self.objects.server]
        if others:
            raise InvalidSettingError(
                "source.exclude_vms",
                f"{others[0].ref.name} is on {others[0].server}, not on the job's server "
                f"{self.objects.server}",
            )

    def _changed(self, refill: bool = True) -> None:
        vms = self.covered_vms(with_disks=True)
        total = sum(d.capacity for v in vms for d in v.vm.disks if d.key not in v.excluded_disks)
        if self.objects.items:
            self.totals.setText(
                f"{len(self.objects.items)} object(s): {len(vms)} VM(s), {fmt.size(total)} "
                "to replicate"
            )
        else:
            self.totals.setText("Nothing added yet.")
        if refill:
            self._fill_disks(vms)

    def _fill_disks(self, vms: list[SourceVm]) -> None:
        self.disks.blockSignals(True)
        self.disks.clear()
        for source in vms:
            vm = source.vm
            item = QTreeWidgetItem([vm.name, fmt.size(sum(d.capacity for d in vm.disks))])
            for d in vm.disks:
                label = d.label or f"Disk {d.key}"
                child = QTreeWidgetItem([f"{label} ({d.key}): {d.file_name}", fmt.size(d.capacity)])
                child.setData(0, DISK_ROLE, (vm.moref, d.key))
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                by_container = d.key in source.excluded_disks and d.key not in (
                    self._excluded_disks.get(vm.moref, set())
                )
                left_out = d.key in source.excluded_disks
                child.setCheckState(
                    0, Qt.CheckState.Unchecked if left_out else Qt.CheckState.Checked
                )
                if by_container:
                    child.setDisabled(True)
                    child.setToolTip(0, "Left out for every VM of a container (set in the job)")
                item.addChild(child)
            self.disks.addTopLevelItem(item)
        self.disks.expandAll()
        self.disks.blockSignals(False)

    def _disk_ticked(self, item: QTreeWidgetItem, _column: int) -> None:
        data = item.data(0, DISK_ROLE)
        if not isinstance(data, tuple):
            return
        moref, key = data
        keys = self._excluded_disks.setdefault(moref, set())
        if item.checkState(0) == Qt.CheckState.Checked:
            keys.discard(key)
        else:
            keys.add(key)
        # The tree shows the tick already. Refilling it here would delete `item` inside its
        # own itemChanged (a crash seen in the console render).
        self._changed(refill=False)

    def set_disk_excluded(self, vm_moref: str, key: int, excluded: bool) -> None:
        """What unticking a disk does (tests and keyboard users go through the item too)."""
        for i in range(self.disks.topLevelItemCount()):
            top = self.disks.topLevelItem(i)
            for j in range(top.childCount() if top is not None else 0):
                child = top.child(j) if top is not None else None
                if child is not None and child.data(0, DISK_ROLE) == (vm_moref, key):
                    state = Qt.CheckState.Unchecked if excluded else Qt.CheckState.Checked
                    child.setCheckState(0, state)
                    return
        raise KeyError((vm_moref, key))

    def fill(self, job: ReplicationJob) -> None:
        server = job.source.server
        self.objects.set_items([DraggedObject(server, r) for r in job.source.objects])
        self.excluded.set_items([DraggedObject(server, r) for r in job.source.exclude_vms])
        self._excluded_disks = {
            d.object.moref: set(d.disk_keys)
            for d in job.source.exclude_disks
            if d.object.kind == ObjectKind.VM
        }
        self._container_disks = tuple(
            d for d in job.source.exclude_disks if d.object.kind != ObjectKind.VM
        )
        self._disk_names = {d.object.moref: d.object.name for d in job.source.exclude_disks}
        self._changed()


def _ref(node: Node) -> ObjectRef:
    return ObjectRef(NODE_KINDS[node.kind], node.moref, node.name)

"""Inventory view: the vSphere tree of every managed server, filterable, with VMs and containers
draggable (as `MIME_OBJECTS`) and the selected VM's details below.

The tree is read by an `InventoryWorker` (the main window's Reload inventory action); this view
only shows the model, switches between Hosts and Clusters and VMs and Templates, and filters.
"""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTextBrowser,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from core.vsphere.models import Inventory, Vm
from gui import format as fmt
from gui.models.inventory import POWER_WORDS, InventoryModel, Node, NodeKind, TreeMode


class InventoryView(QWidget):
    def __init__(self, model: InventoryModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(InventoryModel.NAME)
        self.mode = QComboBox(self)
        self.mode.addItems([m.value for m in TreeMode])
        self.mode.setToolTip("How the tree is organised")
        self.mode.currentTextChanged.connect(lambda text: model.set_mode(TreeMode(text)))
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter by name (VMs, hosts, folders...)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.status = QLabel("", self)
        top = QHBoxLayout()
        top.addWidget(self.mode)
        top.addWidget(self.filter, 1)
        top.addWidget(self.status)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.details = QTextBrowser(self)
        self.details.setPlaceholderText("Select a virtual machine to see its disks and networks.")
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.tree.selectionModel().currentChanged.connect(self._show_details)
        model.modelReset.connect(self._after_reset)

    def _filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        if text:
            self.tree.expandAll()
            self._fit_names()
        self._show_details()  # the selected VM may have been filtered out

    def _fit_names(self) -> None:
        """Names deep in the tree (a VM under host, cluster, datacenter) must not be cut."""
        self.tree.resizeColumnToContents(InventoryModel.NAME)
        header = self.tree.header()
        header.resizeSection(InventoryModel.NAME, max(header.sectionSize(0) + 24, 260))

    def _after_reset(self) -> None:
        self.tree.expandToDepth(2 if self.model.mode == TreeMode.HOSTS else 3)
        for c in range(self.model.columnCount()):
            self.tree.resizeColumnToContents(c)
        self._fit_names()
        vms = sum(len(i.vms) for i in self.model.inventories.values())
        self.status.setText(
            f"{len(self.model.inventories)} server(s), {vms} VMs"
            + (f", {len(self.model.errors)} unreachable" if self.model.errors else "")
        )
        if self.filter.text():
            self.tree.expandAll()

    def selected_nodes(self) -> list[Node]:
        nodes = []
        for index in self.tree.selectionModel().selectedRows(InventoryModel.NAME):
            node = self.proxy.data(index, InventoryModel.NODE_ROLE)
            if isinstance(node, Node):
                nodes.append(node)
        return nodes

    def _show_details(self) -> None:
        index = self.tree.currentIndex()
        visible = index.isValid() and self.tree.selectionModel().isSelected(index)
        node = self.proxy.data(index, InventoryModel.NODE_ROLE) if visible else None
        if not isinstance(node, Node) or node.kind != NodeKind.VM:
            self.details.clear()
            return
        inv = self.model.inventories.get(node.server)
        if inv is None or not inv.has(node.moref):
            self.details.clear()
            return
        self.details.setHtml(vm_details_html(inv.vm(node.moref), inv))


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vm_details_html(vm: Vm, inv: Inventory) -> str:
    host = inv.host(vm.host).name if inv.has(vm.host) else vm.host
    cbt = "on" if vm.change_tracking else "off"
    ips = ", ".join(vm.guest_ips) or "none reported"
    power = POWER_WORDS.get(vm.power_state, vm.power_state).lower()
    rows = [
        f"<b>{_esc(vm.name)}</b> ({_esc(vm.moref)}), {vm.cpus} vCPU, {vm.memory_mb} MiB, "
        f"{power}, host {_esc(host)}, changed block tracking {cbt}, "
        f"guest addresses {_esc(ips)}",
    ]
    for d in vm.disks:
        kind = "thin" if d.thin else "thick"
        rows.append(f"Disk {d.key}: {fmt.size(d.capacity)} {kind}, {_esc(d.file_name)}")
    for n in vm.nics:
        state = "connected" if n.connected else "disconnected"
        rows.append(
            f"NIC {n.key}: {_esc(n.adapter)} on {_esc(n.network_name or '(no network)')}, {state}"
        )
    return "<br>".join(rows)

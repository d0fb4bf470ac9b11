"""`InventoryModel`: the vSphere tree of every managed server, for the Inventory view and drags.

Two views of the same inventories, as vSphere's client has them: Hosts and Clusters (server >
datacenter > cluster > host > VM, standalone hosts under their datacenter) and VMs and
Templates (server > datacenter > VM folders > VM). Built from the `Inventory` dataclasses an
`InventoryWorker` read; the model never talks to vSphere.

Dragging VMs and containers (folder, host, cluster, datacenter) carries them as
`MIME_OBJECTS`: JSON, a list of {"server", "kind", "moref", "name"}, by managed object ID
(names may repeat and carry any character). `objects_from_mime` is the receiving side: it
validates what it reads, since a drop may come from another application.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from core.errors import InvalidSettingError
from core.model.objects import SOURCE_KINDS, ObjectKind, ObjectRef
from core.vsphere.models import Inventory, Vm
from gui import format as fmt
from gui.models.base import RIGHT

MIME_OBJECTS = "application/x-replicadesk-vsphere-objects"
Index = QModelIndex | QPersistentModelIndex


class TreeMode(StrEnum):
    HOSTS = "Hosts and Clusters"
    VMS = "VMs and Templates"


class NodeKind(StrEnum):
    SERVER = "server"
    DATACENTER = "datacenter"
    CLUSTER = "cluster"
    HOST = "host"
    FOLDER = "folder"
    VM = "vm"


KIND_WORDS = {
    NodeKind.SERVER: "Server",
    NodeKind.DATACENTER: "Datacenter",
    NodeKind.CLUSTER: "Cluster",
    NodeKind.HOST: "Host",
    NodeKind.FOLDER: "Folder",
    NodeKind.VM: "Virtual machine",
}
POWER_WORDS = {"poweredOn": "Powered on", "poweredOff": "Powered off", "suspended": "Suspended"}


@dataclass(eq=False)
class Node:
    kind: NodeKind
    name: str
    moref: str
    server: str
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    state: str = ""
    size: int = 0  # provisioned bytes of a VM, or of the VMs below a container
    vms: int = 0  # VMs at or below this node
    row: int = 0
    draggable: bool = False

    def add(self, child: Node) -> Node:
        child.parent = self
        child.row = len(self.children)
        self.children.append(child)
        return child

    def total(self) -> None:
        """Sum VMs and sizes bottom-up."""
        for c in self.children:
            c.total()
        if self.kind != NodeKind.VM:
            self.vms = sum(c.vms for c in self.children)
            self.size = sum(c.size for c in self.children)


@dataclass(frozen=True)
class DraggedObject:
    server: str
    ref: ObjectRef


def _vm_node(server: str, vm: Vm) -> Node:
    state = POWER_WORDS.get(vm.power_state, vm.power_state)
    if vm.template:
        state = "Template"
    return Node(
        NodeKind.VM,
        vm.name,
        vm.moref,
        server,
        state=state,
        size=sum(d.capacity for d in vm.disks),
        vms=1,
        draggable=not vm.template,
    )


def _by_name(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda o: (o.name.casefold(), o.moref))


def build_tree(inventories: dict[str, Inventory], errors: dict[str, str], mode: TreeMode) -> Node:
    root = Node(NodeKind.SERVER, "", "", "")
    for address in sorted(set(inventories) | set(errors)):
        inv = inventories.get(address)
        if inv is None:
            root.add(Node(NodeKind.SERVER, address, "", address, state=errors[address]))
            continue
        kind = "vCenter Server" if inv.about.is_vcenter else "ESXi host"
        server = root.add(
            Node(NodeKind.SERVER, address, "", address, state=f"{kind} {inv.about.version}")
        )
        for dc in _by_name(inv.datacenters):
            dc_node = server.add(
                Node(NodeKind.DATACENTER, dc.name, dc.moref, address, draggable=True)
            )
            if mode == TreeMode.HOSTS:
                _hosts_and_clusters(inv, address, dc.moref, dc_node)
            else:
                _folders(inv, address, dc.vm_folder, dc_node)
    root.total()
    return root


def _host_node(inv: Inventory, address: str, host_moref: str) -> Node:
    host = inv.host(host_moref)
    state = "Connected" if host.connected else host.connection_state.capitalize()
    if host.in_maintenance:
        state = "Maintenance mode"
    node = Node(NodeKind.HOST, host.name, host.moref, address, state=state, draggable=True)
    for vm in _by_name([v for v in inv.vms if v.host == host.moref]):
        node.add(_vm_node(address, vm))
    return node


def _hosts_and_clusters(inv: Inventory, address: str, dc: str, parent: Node) -> None:
    for cluster in _by_name([c for c in inv.clusters if c.datacenter == dc]):
        c_node = parent.add(
            Node(NodeKind.CLUSTER, cluster.name, cluster.moref, address, draggable=True)
        )
        for host in _by_name([h for h in inv.hosts if h.cluster == cluster.moref]):
            c_node.add(_host_node(inv, address, host.moref))
    for host in _by_name([h for h in inv.hosts if h.datacenter == dc and not h.cluster]):
        parent.add(_host_node(inv, address, host.moref))


def _folders(inv: Inventory, address: str, folder: str, parent: Node) -> None:
    for f in _by_name([f for f in inv.folders if f.parent == folder]):
        node = parent.add(Node(NodeKind.FOLDER, f.name, f.moref, address, draggable=True))
        _folders(inv, address, f.moref, node)
    for vm in _by_name([v for v in inv.vms if v.folder == folder]):
        parent.add(_vm_node(address, vm))


_ICONS = {
    NodeKind.SERVER: QStyle.StandardPixmap.SP_DriveNetIcon,
    NodeKind.DATACENTER: QStyle.StandardPixmap.SP_DirHomeIcon,
    NodeKind.CLUSTER: QStyle.StandardPixmap.SP_DirLinkIcon,
    NodeKind.HOST: QStyle.StandardPixmap.SP_ComputerIcon,
    NodeKind.FOLDER: QStyle.StandardPixmap.SP_DirIcon,
    NodeKind.VM: QStyle.StandardPixmap.SP_DesktopIcon,
}


class InventoryModel(QAbstractItemModel):
    NAME, TYPE, STATE, VMS, SIZE, MOREF = range(6)
    HEADERS = ("Name", "Type", "State", "VMs", "Provisioned", "Object ID")
    NODE_ROLE = Qt.ItemDataRole.UserRole + 1  # the Node
    KIND_ROLE = Qt.ItemDataRole.UserRole + 2  # its NodeKind
    MOREF_ROLE = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.mode = TreeMode.HOSTS
        self.inventories: dict[str, Inventory] = {}
        self.errors: dict[str, str] = {}
        self._root = Node(NodeKind.SERVER, "", "", "")
        self._icons: dict[NodeKind, QIcon] = {}

    # -- content ----------------------------------------------------------------------------------

    def set_inventory(self, address: str, inventory: Inventory) -> None:
        self.inventories[address] = inventory
        self.errors.pop(address, None)
        self._rebuild()

    def set_error(self, address: str, message: str) -> None:
        self.inventories.pop(address, None)
        self.errors[address] = message
        self._rebuild()

    def set_servers(self, addresses: Sequence[str]) -> None:
        """Forget servers that are no longer managed."""
        keep = set(addresses)
        if set(self.inventories) | set(self.errors) <= keep:
            return
        self.inventories = {a: i for a, i in self.inventories.items() if a in keep}
        self.errors = {a: e for a, e in self.errors.items() if a in keep}
        self._rebuild()

    def set_mode(self, mode: TreeMode) -> None:
        if mode != self.mode:
            self.mode = mode
            self._rebuild()

    def _rebuild(self) -> None:
        self.beginResetModel()
        self._root = build_tree(self.inventories, self.errors, self.mode)
        self.endResetModel()

    def node(self, index: Index) -> Node:
        if index.isValid():
            node = index.internalPointer()
            assert isinstance(node, Node)
            return node
        return self._root

    def find(self, moref: str, server: str | None = None) -> QModelIndex:
        """The first index (column 0) of the object with that moref."""
        stack = list(self._root.children)
        while stack:
            n = stack.pop(0)
            if n.moref == moref and (server is None or n.server == server):
                return self.createIndex(n.row, 0, n)
            stack.extend(n.children)
        return QModelIndex()

    # -- QAbstractItemModel -----------------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        node = self.node(parent)
        if not 0 <= row < len(node.children) or not 0 <= column < len(self.HEADERS):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        node = self.node(index)
        up = node.parent
        if up is None or up is self._root:
            return QModelIndex()
        return self.createIndex(up.row, 0, up)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.node(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section in (self.VMS, self.SIZE):
            return RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        n = self.node(index)
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if col == self.NAME:
                return n.name
            if col == self.TYPE:
                return KIND_WORDS[n.kind]
            if col == self.STATE:
                return n.state
            if col == self.VMS:
                return "" if n.kind == NodeKind.VM else str(n.vms)
            if col == self.SIZE:
                return fmt.size(n.size) if n.size else ""
            return n.moref
        if role == Qt.ItemDataRole.DecorationRole and col == self.NAME:
            return self._icon(n.kind)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.VMS, self.SIZE):
            return RIGHT
        if role == self.NODE_ROLE:
            return n
        if role == self.KIND_ROLE:
            return n.kind
        if role == self.MOREF_ROLE:
            return n.moref
        return None

    def _icon(self, kind: NodeKind) -> QIcon:
        icon = self._icons.get(kind)
        if icon is None:
            style = QApplication.style()
            icon = style.standardIcon(_ICONS[kind])
            self._icons[kind] = icon
        return icon

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.node(index).draggable:
            flags |= Qt.ItemFlag.ItemIsDragEnabled
        return flags

    # -- drag -------------------------------------------------------------------------------------

    def mimeTypes(self) -> list[str]:
        return [MIME_OBJECTS]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        seen: set[int] = set()
        items = []
        for index in indexes:
            n = self.node(index)
            if id(n) in seen or not n.draggable:
                continue
            seen.add(id(n))
            items.append(
                {"server": n.server, "kind": str(n.kind), "moref": n.moref, "name": n.name}
            )
        mime = QMimeData()
        mime.setData(MIME_OBJECTS, json.dumps(items, ensure_ascii=False).encode())
        mime.setText("\n".join(i["name"] for i in items))
        return mime


def objects_from_mime(mime: QMimeData) -> list[DraggedObject]:
    """The VMs and containers a drop carries; InvalidSettingError when it is not ours."""
    if not mime.hasFormat(MIME_OBJECTS):
        raise InvalidSettingError("drop", "it carries no vSphere objects")
    try:
        untrusted = json.loads(bytes(mime.data(MIME_OBJECTS).data()).decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidSettingError("drop", f"unreadable objects: {e}") from None
    if not isinstance(untrusted, list):
        raise InvalidSettingError("drop", "the objects are not a list")
    out = []
    for i, item in enumerate(untrusted):
        if not isinstance(item, dict) or not isinstance(item.get("server"), str):
            raise InvalidSettingError(f"drop[{i}]", "not an object of a managed server")
        kind_text = item.get("kind")
        kind = ObjectKind(kind_text) if kind_text in set(ObjectKind) else None
        if kind is None or kind not in SOURCE_KINDS:
            raise InvalidSettingError(f"drop[{i}].kind", f"{kind_text!r} cannot be replicated")
        moref, name = item.get("moref"), item.get("name")
        if not isinstance(moref, str) or not isinstance(name, str):
            raise InvalidSettingError(f"drop[{i}]", "an object needs a moref and a name")
        out.append(DraggedObject(item["server"], ObjectRef(kind, moref, name)))
    return out

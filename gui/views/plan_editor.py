"""The failover plan editor: name, scripts, and the VMs in priority groups 1-5 in boot order.

VMs are ordered by drag and drop in a tree of the five priority groups (a VM dropped on a group
goes to its end; dropped on a VM, before or after it; the drag carries the VM's name as
`MIME_PLAN_ITEM`, and a drop of anything else, or of a VM this tree does not hold, is
refused), or with Move up / Move down (keyboard: Ctrl+Up, Ctrl+Down) and the Priority box.
The selected VM's delay, dependencies (VMs of its group) and heartbeat wait are edited beside
the tree. Nothing is checked here that core does not check: the plan is built through
core.model.plans, and a refusal's reason is shown next to the field it names
(`items[2].depends_on[0]` selects that VM and marks its dependencies). The editor never writes
the store: Save hands the plan to its owner, which saves it on a worker and reports back
(`saved` or `save_failed`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidSettingError
from core.model.plans import (
    DEFAULT_DELAY,
    MAX_DELAY,
    MAX_PARALLEL,
    MAX_SCRIPT_TIMEOUT,
    PRIORITIES,
    FailoverPlan,
    PlanItem,
    PlanScript,
)
from core.plans.auto import classify
from gui.snapshot import ReplicaRow
from gui.views.operations import error_label, show_field_error

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
MIME_PLAN_ITEM = "application/x-replicadesk-plan-item"  # JSON: the dragged VM's item name
GROUP_WORDS = {1: "first", 2: "", 3: "default", 4: "", 5: "last"}
_ITEM_FIELD = re.compile(r"^items\[(\d+)\](?:\.(\w+))?")


def group_label(priority: int) -> str:
    extra = GROUP_WORDS[priority]
    return f"Priority {priority}" + (f" ({extra})" if extra else "")


class GroupTree(QTreeWidget):
    """Five priority groups, each with its VMs in boot order; VMs move by drag and drop."""

    moved = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["VM", "Job", "Delay after"])
        self.setAccessibleName("VMs by priority group, in boot order")
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.groups: dict[int, QTreeWidgetItem] = {}
        for p in PRIORITIES:
            group = QTreeWidgetItem(self, [group_label(p)])
            group.setFlags(
                Qt.ItemFlag.ItemIsEnabled
                | Qt.ItemFlag.ItemIsDropEnabled
                | Qt.ItemFlag.ItemIsSelectable
            )
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            group.setFirstColumnSpanned(True)
            self.groups[p] = group
        self.expandAll()

    def add(self, item: PlanItem, delay_text: str) -> QTreeWidgetItem:
        child = QTreeWidgetItem([item.name, item.job or "any", delay_text])
        child.setData(0, NAME_ROLE, item.name)
        child.setFlags(
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )
        self.groups[item.priority].addChild(child)
        return child

    @staticmethod
    def members(group: QTreeWidgetItem) -> list[QTreeWidgetItem]:
        """The VMs of a group, in boot order."""
        return [c for i in range(group.childCount()) if (c := group.child(i)) is not None]

    def order(self) -> list[tuple[int, str]]:
        """(priority, item name) of every VM, group by group, in boot order."""
        return [
            (p, str(c.data(0, NAME_ROLE))) for p, g in self.groups.items() for c in self.members(g)
        ]

    def item_named(self, name: str) -> QTreeWidgetItem | None:
        for g in self.groups.values():
            for c in self.members(g):
                if c.data(0, NAME_ROLE) == name:
                    return c
        return None

    def current_vm(self) -> QTreeWidgetItem | None:
        """The selected VM (None when nothing, or a group, is selected)."""
        child = self.currentItem()
        return child if child is not None and child.parent() is not None else None

    def priority_of(self, child: QTreeWidgetItem) -> int:
        parent = child.parent()
        return next(p for p, g in self.groups.items() if g is parent)

    def place(self, child: QTreeWidgetItem, priority: int, index: int) -> None:
        """Put `child` at `index` of group `priority` (clamped), keeping it selected."""
        source = child.parent()
        if source is None:
            return
        at = source.indexOfChild(child)
        group = self.groups[priority]
        if group is source and index > at:
            index -= 1
        source.takeChild(at)
        group.insertChild(max(0, min(index, group.childCount())), child)
        group.setExpanded(True)
        self.setCurrentItem(child)
        self.moved.emit()

    def drop_target(self, pos: QPoint) -> tuple[int, int] | None:
        """(priority, index) a drop at `pos` of the viewport puts a VM at."""
        target = self.itemAt(pos)
        if target is None:
            last = max(self.groups)
            return last, self.groups[last].childCount()
        group = target.parent()
        if group is None:  # a group: its end
            p = next(p for p, g in self.groups.items() if g is target)
            return p, target.childCount()
        rect = self.visualItemRect(target)
        index = group.indexOfChild(target) + (1 if pos.y() > rect.center().y() else 0)
        return self.priority_of(target), index

    def mimeTypes(self) -> list[str]:
        return [MIME_PLAN_ITEM]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:
        """A drag of one VM: its item name (groups are not dragged)."""
        mime = QMimeData()
        names = [str(i.data(0, NAME_ROLE)) for i in items if i.parent() is not None]
        if len(names) == 1:
            mime.setData(MIME_PLAN_ITEM, json.dumps(names[0]).encode())
        return mime

    def dragged(self, mime: QMimeData) -> QTreeWidgetItem | None:
        """The VM of this tree a drag carries, or None (another kind of drag, or a VM of
        another plan)."""
        if not mime.hasFormat(MIME_PLAN_ITEM):
            return None
        try:
            untrusted_name = json.loads(bytes(mime.data(MIME_PLAN_ITEM).data()))
        except ValueError:
            return None
        if not isinstance(untrusted_name, str):
            return None
        return self.item_named(untrusted_name)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dragged(event.mimeData()) is None:
            event.ignore()
            return
        super().dragEnterEvent(event)
        event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        super().dragMoveEvent(event)  # the drop indicator and auto-scroll
        if self.dragged(event.mimeData()) is None:
            event.ignore()
        else:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """The move is made here, on the tree's own items (so dependencies keep their VMs);
        reported to Qt as a copy, so the view does not also remove the dragged row."""
        dragged = self.dragged(event.mimeData())
        where = self.drop_target(event.position().toPoint())
        if dragged is None or where is None:
            event.ignore()
            return
        self.place(dragged, *where)
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()


class EditorState:
    """The plan being edited: its items by name (the tree holds their order and groups)."""

    def __init__(self, plan: FailoverPlan | None) -> None:
        self.items: dict[str, PlanItem] = {}
        if plan is not None:
            for it in plan.items:
                self.items[it.name] = it


class PlanEditor(QDialog):
    """Edit a plan (or make a new one): `save_requested(plan, old name or None)` when Save is
    pressed and core's model accepts the plan; the owner saves it and calls `saved` or
    `save_failed`."""

    save_requested = Signal(object, object)  # FailoverPlan, str | None

    def __init__(
        self,
        plan: FailoverPlan | None,
        replicas: list[ReplicaRow],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.original = plan
        self.replicas = replicas
        self.state = EditorState(plan)
        self.setWindowTitle(f"Failover plan: {plan.name}" if plan else "New failover plan")
        self.resize(1000, 680)

        self.name = QLineEdit(plan.name if plan else "")
        self.name.setAccessibleName("Plan name")
        self.name_error = error_label()
        self.description = QLineEdit(plan.description if plan else "")
        self.parallel = QDoubleSpinBox()
        self.parallel.setDecimals(0)
        self.parallel.setRange(1, MAX_PARALLEL)
        self.parallel.setValue(plan.max_parallel if plan else MAX_PARALLEL)
        self.parallel.setSuffix(" VMs")
        self.parallel_error = error_label()
        self.pre_command, self.pre_timeout, self.pre_error = self._script_fields(
            plan.pre_script if plan else None
        )
        self.post_command, self.post_timeout, self.post_error = self._script_fields(
            plan.post_script if plan else None
        )
        form = QFormLayout()
        form.addRow("&Name:", self.name)
        form.addRow("", self.name_error)
        form.addRow("&Description:", self.description)
        form.addRow("VMs starting at on&ce:", self.parallel)
        form.addRow("", self.parallel_error)
        form.addRow("&Pre-script:", self._row(self.pre_command, self.pre_timeout))
        form.addRow("", self.pre_error)
        form.addRow("Po&st-script:", self._row(self.post_command, self.post_timeout))
        form.addRow("", self.post_error)

        self.tree = GroupTree()
        self.items_error = error_label()
        self.add_button = QPushButton("&Add VMs...")
        self.remove_button = QPushButton("&Remove")
        self.up_button = QPushButton("Move &up")
        self.down_button = QPushButton("Move do&wn")
        self.add_button.clicked.connect(self.add_vms)
        self.remove_button.clicked.connect(self.remove_current)
        self.up_button.clicked.connect(lambda: self.shift(-1))
        self.down_button.clicked.connect(lambda: self.shift(1))
        QShortcut(QKeySequence("Ctrl+Up"), self.tree, lambda: self.shift(-1))
        QShortcut(QKeySequence("Ctrl+Down"), self.tree, lambda: self.shift(1))
        tree_buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.up_button, self.down_button):
            tree_buttons.addWidget(b)
        tree_buttons.addStretch(1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        hint = QLabel("Drag VMs to order them; a VM dropped on a group goes to its end.")
        hint.setStyleSheet("color: palette(placeholder-text)")
        ll.addWidget(hint)
        ll.addWidget(self.tree, 1)
        ll.addWidget(self.items_error)
        ll.addLayout(tree_buttons)

        self.item_box = QGroupBox("Selected VM")
        self.priority = QComboBox()
        for p in PRIORITIES:
            self.priority.addItem(group_label(p), p)
        self.priority_error = error_label()
        self.delay = QDoubleSpinBox()
        self.delay.setRange(0, MAX_DELAY)
        self.delay.setDecimals(0)
        self.delay.setSuffix(" s")
        self.delay.setToolTip("Seconds before its dependants and the next group start")
        self.delay_error = error_label()
        self.depends = QListWidget()
        self.depends.setAccessibleName("Depends on")
        self.depends.setToolTip("VMs of the same group that must be up (and their delay over)")
        self.depends_error = error_label()
        self.heartbeat = QCheckBox("Wait for the &heartbeat (VMware Tools) after power-on")
        self.heartbeat_timeout = QDoubleSpinBox()
        self.heartbeat_timeout.setRange(1, MAX_DELAY)
        self.heartbeat_timeout.setDecimals(0)
        self.heartbeat_timeout.setSuffix(" s")
        self.heartbeat_error = error_label()
        item_form = QFormLayout(self.item_box)
        item_form.addRow("Pr&iority group:", self.priority)
        item_form.addRow("", self.priority_error)
        item_form.addRow("De&lay after:", self.delay)
        item_form.addRow("", self.delay_error)
        item_form.addRow("Depends &on:", self.depends)
        item_form.addRow("", self.depends_error)
        item_form.addRow(self.heartbeat)
        item_form.addRow("Heartbeat &timeout:", self.heartbeat_timeout)
        item_form.addRow("", self.heartbeat_error)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.item_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        if plan is not None:
            for _, members in plan.groups():
                for it in members:
                    self.tree.add(it, f"{it.delay_after:g} s")
        self.tree.currentItemChanged.connect(lambda *_: self._show_item())
        self.tree.moved.connect(self._moved)
        self.priority.activated.connect(self._priority_chosen)
        self.delay.valueChanged.connect(lambda _v: self._edit())
        self.heartbeat.toggled.connect(lambda _v: self._edit())
        self.heartbeat_timeout.valueChanged.connect(lambda _v: self._edit())
        self.depends.itemChanged.connect(lambda _i: self._edit())
        self._loading = False
        first = next((g.child(0) for g in self.tree.groups.values() if g.childCount()), None)
        if first is not None:
            self.tree.setCurrentItem(first)
        self._show_item()

    # -- construction helpers ---------------------------------------------------------------------

    @staticmethod
    def _script_fields(script: PlanScript | None) -> tuple[QLineEdit, QDoubleSpinBox, QLabel]:
        command = QLineEdit(script.command if script else "")
        command.setPlaceholderText("none (a command line run on the backup server)")
        timeout = QDoubleSpinBox()
        timeout.setRange(1, MAX_SCRIPT_TIMEOUT)
        timeout.setDecimals(0)
        timeout.setSuffix(" s timeout")
        timeout.setValue(script.timeout if script else 300)
        return command, timeout, error_label()

    @staticmethod
    def _row(*widgets: QWidget) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(widgets[0], 1)
        for w in widgets[1:]:
            row.addWidget(w)
        return box

    # -- the selected item ------------------------------------------------------------------------

    def current_name(self) -> str | None:
        child = self.tree.current_vm()
        return None if child is None else str(child.data(0, NAME_ROLE))

    def _show_item(self) -> None:
        name = self.current_name()
        child = self.tree.current_vm()
        group = child.parent() if child is not None else None
        self.item_box.setEnabled(name is not None)
        for b in (self.remove_button, self.up_button, self.down_button):
            b.setEnabled(name is not None)
        if name is None or child is None or group is None:
            self.item_box.setTitle("Selected VM")
            return
        it = self.state.items[name]
        self._loading = True
        try:
            self.item_box.setTitle(f"{name}" + (f" (job {it.job})" if it.job else ""))
            self.priority.setCurrentIndex(PRIORITIES.index(self.tree.priority_of(child)))
            self.delay.setValue(it.delay_after)
            self.heartbeat.setChecked(it.wait_heartbeat)
            self.heartbeat_timeout.setValue(it.heartbeat_timeout)
            self.depends.clear()
            for member in self.tree.members(group):
                other = str(member.data(0, NAME_ROLE))
                if other == name:
                    continue
                entry = QListWidgetItem(other)
                entry.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                checked = other in it.depends_on
                entry.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                self.depends.addItem(entry)
            # A dependency on a VM now in another group stays listed (core refuses it, and
            # says why next to this list) until it is unticked.
            for dep in it.depends_on:
                if not self.depends.findItems(dep, Qt.MatchFlag.MatchExactly):
                    entry = QListWidgetItem(f"{dep}")
                    entry.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                    entry.setCheckState(Qt.CheckState.Checked)
                    entry.setToolTip("not in this priority group")
                    self.depends.addItem(entry)
            if not self.depends.count():
                alone = QListWidgetItem("No other VM in this priority group")
                alone.setFlags(Qt.ItemFlag.NoItemFlags)
                self.depends.addItem(alone)
        finally:
            self._loading = False

    def _edit(self) -> None:
        name = self.current_name()
        if name is None or self._loading:
            return
        depends = tuple(
            self.depends.item(i).text()
            for i in range(self.depends.count())
            if self.depends.item(i).flags() & Qt.ItemFlag.ItemIsUserCheckable
            and self.depends.item(i).checkState() == Qt.CheckState.Checked
        )
        try:
            self.state.items[name] = replace(
                self.state.items[name],
                delay_after=self.delay.value(),
                depends_on=depends,
                wait_heartbeat=self.heartbeat.isChecked(),
                heartbeat_timeout=self.heartbeat_timeout.value(),
            )
        except InvalidSettingError as e:
            self._item_error(e.field, e.problem)
            return
        self.heartbeat_timeout.setEnabled(self.heartbeat.isChecked())
        child = self.tree.currentItem()
        if child is not None:
            child.setText(2, f"{self.delay.value():g} s")

    def _priority_chosen(self, index: int) -> None:
        child = self.tree.current_vm()
        if child is None:
            return
        priority = PRIORITIES[index]
        if priority != self.tree.priority_of(child):
            self.tree.place(child, priority, self.tree.groups[priority].childCount())

    def _moved(self) -> None:
        self._show_item()

    def shift(self, step: int) -> None:
        """Move the selected VM up or down its group, across into the next group at an end."""
        child = self.tree.current_vm()
        group = child.parent() if child is not None else None
        if child is None or group is None:
            return
        p = self.tree.priority_of(child)
        at = group.indexOfChild(child)
        count = group.childCount()
        if 0 <= at + step < count:
            self.tree.place(child, p, at + step + (1 if step > 0 else 0))
        elif step < 0 and p > PRIORITIES[0]:
            self.tree.place(child, p - 1, self.tree.groups[p - 1].childCount())
        elif step > 0 and p < PRIORITIES[-1]:
            self.tree.place(child, p + 1, 0)

    def remove_current(self) -> None:
        name = self.current_name()
        child = self.tree.current_vm()
        group = child.parent() if child is not None else None
        if name is None or child is None or group is None:
            return
        group.removeChild(child)
        del self.state.items[name]
        self._show_item()

    # -- adding VMs -------------------------------------------------------------------------------

    def candidates(self) -> list[ReplicaRow]:
        have = {it.vm for it in self.state.items.values()} | {
            f"replica {it.replica}" for it in self.state.items.values() if it.replica
        }
        return [
            r
            for r in self.replicas
            if r.replica.vm_name not in have and f"replica {r.replica.id}" not in have
        ]

    def add_replicas(self, rows: list[ReplicaRow]) -> None:
        """Add VMs (their group suggested by one-click planning's rules, from the name)."""
        names = {r.replica.vm_name for r in self.replicas}
        twice = {n for n in names if sum(1 for r in self.replicas if r.replica.vm_name == n) > 1}
        last = None
        for row in rows:
            r = row.replica
            priority, _why = classify(r.vm_name)
            item = PlanItem(
                vm=r.vm_name if r.vm_name not in twice else "",
                job=r.job,
                replica=r.id if r.vm_name in twice else None,
                priority=priority,
                delay_after=DEFAULT_DELAY,
            )
            if item.name in self.state.items:
                continue
            self.state.items[item.name] = item
            last = self.tree.add(item, f"{item.delay_after:g} s")
        if last is not None:
            self.tree.setCurrentItem(last)

    def add_vms(self) -> None:
        picker = ReplicaPicker(self.candidates(), self)
        picker.accepted.connect(lambda: self.add_replicas(picker.chosen()))
        picker.open()

    # -- saving -----------------------------------------------------------------------------------

    def _clear_errors(self) -> None:
        for label in (
            self.name_error,
            self.parallel_error,
            self.pre_error,
            self.post_error,
            self.items_error,
            self.priority_error,
            self.delay_error,
            self.depends_error,
            self.heartbeat_error,
        ):
            show_field_error(label, "")
        self.status.setText("")

    def _item_error(self, field: str, problem: str) -> None:
        label = {
            "priority": self.priority_error,
            "delay_after": self.delay_error,
            "heartbeat_timeout": self.heartbeat_error,
            "wait_heartbeat": self.heartbeat_error,
        }.get(field.split("[")[0], self.depends_error)
        show_field_error(label, problem)

    def _script(
        self, command: QLineEdit, timeout: QDoubleSpinBox, label: QLabel
    ) -> PlanScript | None:
        text = command.text().strip()
        if not text:
            return None
        try:
            return PlanScript(text, timeout.value())
        except InvalidSettingError as e:
            show_field_error(label, e.problem)
            raise

    def build(self) -> FailoverPlan | None:
        """The plan as core's model accepts it; None (reasons shown by their fields) if not."""
        self._clear_errors()
        try:
            pre = self._script(self.pre_command, self.pre_timeout, self.pre_error)
            post = self._script(self.post_command, self.post_timeout, self.post_error)
        except InvalidSettingError:
            return None
        order = self.tree.order()
        items = tuple(replace(self.state.items[name], priority=p, order=0) for p, name in order)
        try:
            return FailoverPlan(
                self.name.text().strip(),
                items,
                self.description.text().strip(),
                int(self.parallel.value()),
                pre,
                post,
            )
        except InvalidSettingError as e:
            self.show_refusal(e, [name for _, name in order])
            return None

    def show_refusal(self, e: InvalidSettingError, names: list[str]) -> None:
        field = e.field
        if field == "name":
            show_field_error(self.name_error, e.problem)
            self.name.setFocus()
        elif field == "max_parallel":
            show_field_error(self.parallel_error, e.problem)
        elif field == "items":
            show_field_error(self.items_error, e.problem)
        else:
            m = _ITEM_FIELD.match(field)
            if m is not None and int(m.group(1)) < len(names):
                child = self.tree.item_named(names[int(m.group(1))])
                if child is not None:
                    self.tree.setCurrentItem(child)
                self._item_error(m.group(2) or "depends_on", e.problem)
            else:
                show_field_error(self.items_error, str(e))
        self.status.setText("The plan was not saved: see the reason next to the field.")

    def save(self) -> None:
        plan = self.build()
        if plan is None:
            return
        self.save_button.setEnabled(False)
        self.status.setText("Saving...")
        self.save_requested.emit(plan, self.original.name if self.original else None)

    def saved(self, plan: FailoverPlan) -> None:
        self.original = plan
        self.accept()

    def save_failed(self, message: str, _detail: str = "") -> None:
        self.save_button.setEnabled(True)
        self.status.setText("")
        if "already exists" in message or "failover plan" in message:
            show_field_error(self.name_error, message)
        else:
            show_field_error(self.items_error, message)


class ReplicaPicker(QDialog):
    """Replicated VMs to add to a plan (checkable)."""

    def __init__(self, rows: list[ReplicaRow], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add VMs to the plan")
        self.resize(520, 420)
        self.rows = rows
        self.list = QListWidget()
        self.list.setAccessibleName("Replicated VMs")
        for n, row in enumerate(rows):
            r = row.replica
            entry = QListWidgetItem(f"{r.vm_name}  (job {r.job}, {r.state})")
            entry.setData(NAME_ROLE, n)
            entry.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            entry.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(entry)
        empty = QLabel("Every replicated VM is in the plan already." if not rows else "")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Tick the VMs to add; each goes to the group its name suggests."))
        layout.addWidget(self.list, 1)
        if not rows:
            layout.addWidget(empty)
        layout.addWidget(buttons)

    def check(self, vm_name: str) -> None:
        for i in range(self.list.count()):
            if self.rows[i].replica.vm_name == vm_name:
                self.list.item(i).setCheckState(Qt.CheckState.Checked)

    def chosen(self) -> list[ReplicaRow]:
        return [
            self.rows[i]
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

"""'Add to Replication Job': VMs and containers from the main window's Inventory view put into a
job, through its wizard, without opening the wizard first (as backup consoles offer it).

Two gestures, one path (`AddToJob.add`):
- the Inventory view's "Add to Replication Job" action (toolbar, right-click menu, Inventory
  menu), whose submenu lists every job, then "New Replication Job...";
- a drop of the Inventory view's drag payload (`MIME_OBJECTS`) onto the Jobs view: onto a job's
  row, that job; onto empty space, a new job (`JobsModel.objectsDropped`).
Either opens the job wizard (Edit, or New) on its Virtual machines step with the objects added
(`JobWizard.add_objects`), or adds them to the wizard already open when it is for that same
job. Refused, with the reason in a message: objects none of which are on the job's source
server, and a wizard open for another job. Nothing is stored here: the wizard's Finish stores
the job, its Cancel leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QToolButton

from core.errors import InvalidSettingError
from gui.models.inventory import DraggedObject, objects_from_mime
from gui.wizard.wizard import JobWizard

if TYPE_CHECKING:
    from gui.main_window import MainWindow

NEW_JOB = "&New Replication Job..."
SHORTCUT = "Ctrl+J"


class AddToJob(QObject):
    added = Signal(object, object)  # the JobWizard, its `Added` (what was taken and what not)
    refused = Signal(str)  # why nothing was added

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.menu = QMenu(window)
        self.menu.aboutToShow.connect(self._fill_menu)
        # An action of its own, not the menu's menuAction(): a C++-made action put on the
        # toolbar loses its Python wrapper when PySide's QToolBar.clear() lets go of it.
        icon = window.style().standardIcon(QStyle.StandardPixmap.SP_ArrowRight)
        action = QAction(icon, "&Add to Replication Job", window)
        action.setMenu(self.menu)
        tip = "Put the selected VMs and containers into a replication job, or a new one"
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({SHORTCUT})")
        action.setShortcut(QKeySequence(SHORTCUT))
        # Only where the selection is: in the Inventory view (it pops the submenu up there).
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(self.popup)
        self.action = action
        self._fill_menu()
        self._install()

    def _install(self) -> None:
        from gui.main_window import Page

        w = self.window
        tree = w.inventory_view.tree
        existing = tree.actions()
        if existing:
            tree.insertAction(existing[0], self.action)  # first in the right-click menu
        else:
            tree.addAction(self.action)
        w.page_actions[Page.INVENTORY] = [self.action, *w.page_actions[Page.INVENTORY]]
        w.inventory_menu.insertAction(w.inventory_menu.actions()[0], self.action)
        tree.selectionModel().selectionChanged.connect(self._update)
        w.inventory_model.modelReset.connect(self._update)
        w.pageChanged.connect(self._toolbar_button)
        w.jobs_view.accept_drops()
        # Queued: the drop returns first, then the wizard opens (the drag's source is done).
        w.jobs_model.objectsDropped.connect(self.add, Qt.ConnectionType.QueuedConnection)
        w.jobs_model.dropRefused.connect(self._refuse)
        self._update()

    # -- the action and its submenu ---------------------------------------------------------------

    def selected_objects(self) -> list[DraggedObject]:
        """What the Inventory view's selection would carry in a drag (templates, servers: no)."""
        view = self.window.inventory_view
        rows = sorted(view.tree.selectionModel().selectedRows(0), key=_tree_order)
        if not rows:
            return []
        return objects_from_mime(view.proxy.mimeData(rows))

    def _update(self, *_args: object) -> None:
        nodes = self.window.inventory_view.selected_nodes()
        self.action.setEnabled(any(n.draggable for n in nodes))

    def _toolbar_button(self, _page: str) -> None:
        button = self.window.toolbar.widgetForAction(self.action)
        if isinstance(button, QToolButton):
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)

    def _fill_menu(self) -> None:
        self.menu.clear()
        rows = sorted(self.window.jobs_model.records(), key=lambda r: r.name.casefold())
        for row in rows:
            item = self.menu.addAction(row.name.replace("&", "&&"))  # a name, not a mnemonic
            item.setData(row.name)
            item.setStatusTip(
                f"Open {row.name} in the job wizard with the selection added "
                f"(its VMs come from {row.job.source.server})"
            )
            item.triggered.connect(lambda _c=False, name=row.name: self.add_selection(name))
        if rows:
            self.menu.addSeparator()
        new = self.menu.addAction(NEW_JOB)
        new.setData("")
        new.setStatusTip("Open the New Replication Job wizard with the selection added")
        new.triggered.connect(lambda _c=False: self.add_selection(""))

    def popup(self) -> None:
        """The shortcut: the submenu beside the Inventory view's current row."""
        tree = self.window.inventory_view.tree
        rect = tree.visualRect(tree.currentIndex())
        at = rect.bottomLeft() if rect.isValid() else QPoint(0, 0)
        self.menu.popup(tree.viewport().mapToGlobal(at))

    def add_selection(self, job: str) -> JobWizard | None:
        try:
            objects = self.selected_objects()
        except InvalidSettingError as e:
            self._refuse(f"The selection cannot be added: {e.problem}")
            return None
        return self.add(objects, job)

    # -- into the wizard --------------------------------------------------------------------------

    def add(self, objects: Sequence[DraggedObject], job: str) -> JobWizard | None:
        """Put `objects` into job `job`'s wizard ("": a new job's); None when refused."""
        w = self.window
        if not objects:
            self._refuse("Select VMs or containers in the Inventory to add them to a job.")
            return None
        stored = None
        if job:
            row = w.jobs_model.row_of(job)
            if row < 0:
                self._refuse(f"There is no job {job} any more.")
                return None
            stored = w.jobs_model.record(row).job
            server = stored.source.server
            if all(o.server != server for o in objects):
                names = ", ".join(o.ref.name for o in objects)
                where = ", ".join(sorted({o.server for o in objects}))
                self._refuse(
                    f"Not added to {job}: {names} (on {where}). The job replicates VMs of its "
                    f"source server {server}; a job's VMs all come from one server."
                )
                return None
        open_wizard = w.job_wizard
        if open_wizard is not None:
            editing = open_wizard.original.name if open_wizard.original is not None else ""
            if editing != job:
                open_wizard.raise_()
                now = f"job {editing}" if editing else "a new job"
                wanted = f"job {job}" if job else "a new job"
                self._refuse(
                    f"The job wizard is open for {now}: finish or cancel it before adding to "
                    f"{wanted}. Nothing was added."
                )
                return None
            wizard = open_wizard
            wizard.raise_()
            wizard.activateWindow()
        else:
            wizard = w.open_wizard(stored)
        added = wizard.add_objects(objects)
        w.statusBar().showMessage(f"{wizard.windowTitle()}: {added.text}", 15000)
        self.added.emit(wizard, added)
        return wizard

    def _refuse(self, message: str) -> None:
        """Say why nothing was added (a message box, and the status bar)."""
        self.window.show_error(message)
        self.refused.emit(message)


def _tree_order(index: QModelIndex) -> list[int]:
    """Sort key: where a row is in the tree (the selection's own order is the clicks')."""
    rows = []
    while index.isValid():
        rows.append(index.row())
        index = index.parent()
    return rows[::-1]

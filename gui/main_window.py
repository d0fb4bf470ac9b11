"""The main window: navigation pane, ribbon-like toolbar, the current view, a status bar.

Navigation follows the backup consoles administrators know: Home (Jobs, Replicas > Ready /
Active, Last 24 hours), Inventory, Backup infrastructure (managed servers, backup proxies,
repositories), History. The toolbar shows the actions of the current page; they are enabled by
what is selected, and the same actions are in the right-click menus and the menu bar, each
with a shortcut (Ctrl+1... goes to a page and puts the keyboard in its table, Ctrl+F in its
filter box); every menu entry has a mnemonic of its own.

The window owns the store's `StoreWatcher` (every table's data) and the `Workers` (runs and
inventory reads); it connects their signals to the models and turns actions into requests. It
never reads the store or vSphere itself.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QStyle,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from core.model.infra import BackupProxy, ManagedServer, Repository
from core.model.job import ReplicationJob
from core.model.runs import Session
from core.store.store import Store
from gui import format as fmt
from gui.add_to_job import AddToJob
from gui.disaster_recovery import DisasterRecovery
from gui.models.infra import ProxiesModel, RepositoriesModel, ServersModel
from gui.models.inventory import InventoryModel
from gui.models.jobs import JobsModel
from gui.models.replicas import ReplicasModel
from gui.models.sessions import SessionsModel
from gui.proxy_dialog import AddProxyDialog
from gui.repository_dialog import AddRepositoryDialog
from gui.server_dialog import AddServerDialog
from gui.snapshot import JobRow, ReplicaRow
from gui.store_watcher import DEFAULT_INTERVAL_MS, StoreWatcher
from gui.views.infrastructure import InfrastructureView
from gui.views.inventory import InventoryView
from gui.views.plans import PlansView
from gui.views.replicas import ReplicasView
from gui.views.session import SessionWindow
from gui.views.table import RecordTable
from gui.wizard.context import WizardContext
from gui.wizard.wizard import JobWizard
from gui.workers import InventoryWorker, RunJobWorker, Workers

DAY = dt.timedelta(hours=24)


class Page(StrEnum):
    JOBS = "Jobs"
    REPLICAS_READY = "Ready"
    REPLICAS_ACTIVE = "Active"
    PLANS = "Failover Plans"
    LAST_24H = "Last 24 Hours"
    INVENTORY = "Inventory"
    SERVERS = "Managed Servers"
    PROXIES = "Backup Proxies"
    REPOSITORIES = "Repositories"
    HISTORY = "History"


# (group label, the page the group itself opens, its pages)
NAVIGATION: tuple[tuple[str, Page, tuple[Page, ...]], ...] = (
    ("Home", Page.JOBS, (Page.JOBS, Page.PLANS, Page.LAST_24H)),
    ("Inventory", Page.INVENTORY, ()),
    ("Backup Infrastructure", Page.SERVERS, (Page.SERVERS, Page.PROXIES, Page.REPOSITORIES)),
    ("History", Page.HISTORY, ()),
)
REPLICA_PAGES = (Page.REPLICAS_READY, Page.REPLICAS_ACTIVE)
SESSION_PAGES = (Page.LAST_24H, Page.HISTORY)
PAGE_ORDER = (
    Page.JOBS,
    Page.REPLICAS_READY,
    Page.REPLICAS_ACTIVE,
    Page.PLANS,
    Page.LAST_24H,
    Page.INVENTORY,
    Page.SERVERS,
    Page.PROXIES,
    Page.REPOSITORIES,
    Page.HISTORY,
)
PAGE_ROLE = Qt.ItemDataRole.UserRole + 1
# The Go menu's entries, each with a mnemonic of its own (Alt+G, then the letter).
GO_LABELS = {
    Page.JOBS: "&Jobs",
    Page.REPLICAS_READY: "Replicas: &Ready",
    Page.REPLICAS_ACTIVE: "Replicas: &Active",
    Page.PLANS: "Failover &Plans",
    Page.LAST_24H: "&Last 24 Hours",
    Page.INVENTORY: "&Inventory",
    Page.SERVERS: "Managed &Servers",
    Page.PROXIES: "Backup Pr&oxies",
    Page.REPOSITORIES: "Reposi&tories",
    Page.HISTORY: "&History",
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MainWindow(QMainWindow):
    pageChanged = Signal(str)
    runStarted = Signal(object)  # the RunJobWorker of a run started here
    sessionOpened = Signal(object)  # the SessionWindow just opened
    wizardOpened = Signal(object)  # the JobWizard just opened (New or Edit job)
    serverDialogOpened = Signal(object)  # the AddServerDialog just opened
    proxyDialogOpened = Signal(object)  # the AddProxyDialog just opened
    repositoryDialogOpened = Signal(object)  # the AddRepositoryDialog just opened

    def __init__(
        self, store: Store, poll_ms: int = DEFAULT_INTERVAL_MS, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle(f"ReplicaDesk - {store.path}")
        self.resize(1400, 860)
        self.watcher = StoreWatcher(store, poll_ms)
        self.workers = Workers(self)
        self.session_windows: dict[int, SessionWindow] = {}
        self._closing = False
        self._inventory_worker: InventoryWorker | None = None
        self.job_wizard: JobWizard | None = None
        self.server_dialog: AddServerDialog | None = None
        self.proxy_dialog: AddProxyDialog | None = None
        self.repository_dialog: AddRepositoryDialog | None = None
        self._last_poll: dt.datetime | None = None

        self.jobs_model = JobsModel(self)
        self.sessions_model = SessionsModel(self)
        self.replicas_model = ReplicasModel(self)
        self.servers_model = ServersModel(self)
        self.proxies_model = ProxiesModel(self)
        self.repositories_model = RepositoriesModel(self)
        self.inventory_model = InventoryModel(self)
        # Replica operations, failover plans and planning (their actions, page and windows).
        self.dr = DisasterRecovery(self, poll_ms)

        self._make_views()
        self._make_actions()
        self._make_navigation()
        self._make_menus()
        self._make_status_bar()
        self._connect()
        # "Add to Replication Job" from the Inventory view, and drops on the Jobs view.
        self.add_to_job = AddToJob(self)
        self.show_page(Page.JOBS)

    # -- construction ------------------------------------------------------------------------------

    def _make_views(self) -> None:
        self.jobs_view = RecordTable(
            self.jobs_model,
            empty_text="No replication jobs yet. Create one with New Replication Job (Ctrl+N), "
            "or drag VMs here from the Inventory.",
            filter_hint="Filter jobs",
        )
        self.ready_view = ReplicasView(
            self.replicas_model,
            lambda r: not r.active,
            "No replicas yet: they appear after a job's first run.",
        )
        self.active_view = ReplicasView(
            self.replicas_model,
            lambda r: r.active,
            "No replica is failed over or failing back.",
        )
        self.last24_view = RecordTable(
            self.sessions_model,
            predicate=self._in_last_24h,
            empty_text="No job ran in the last 24 hours.",
            sort_column=SessionsModel.STARTED,
            descending=True,
            filter_hint="Filter sessions",
        )
        self.history_view = RecordTable(
            self.sessions_model,
            empty_text="No job has run yet.",
            sort_column=SessionsModel.STARTED,
            descending=True,
            filter_hint="Filter sessions",
        )
        self.inventory_view = InventoryView(self.inventory_model)
        self.servers_view = InfrastructureView(
            "Managed Servers",
            "vCenter Servers and standalone ESXi hosts ReplicaDesk logs in to. The DR site's "
            "hosts may be added directly, so failover works without the production vCenter.",
            self.servers_model,
            "No managed servers. Add one with Add Server (or `replicadesk server add`).",
        )
        self.proxies_view = InfrastructureView(
            "Backup Proxies",
            "Hosts running the data mover service (`replicadesk mover serve`); a job's VM disks "
            "are processed by tasks on them, up to each proxy's task limit.",
            self.proxies_model,
            "No backup proxies. Add one with Add Proxy (or `replicadesk proxy add`).",
        )
        self.repositories_view = InfrastructureView(
            "Repositories",
            "Where replica metadata (the digests of every block of every replica disk) is kept: "
            "on the source side, close to the source proxy.",
            self.repositories_model,
            "No repositories. Add one with Add Repository (or `replicadesk repo add`).",
        )
        self.pages: dict[Page, QWidget] = {
            Page.JOBS: self.jobs_view,
            Page.REPLICAS_READY: self.ready_view,
            Page.REPLICAS_ACTIVE: self.active_view,
            Page.PLANS: self.dr.plans_view,
            Page.LAST_24H: self.last24_view,
            Page.INVENTORY: self.inventory_view,
            Page.SERVERS: self.servers_view,
            Page.PROXIES: self.proxies_view,
            Page.REPOSITORIES: self.repositories_view,
            Page.HISTORY: self.history_view,
        }
        self.stack = QStackedWidget(self)
        for page in PAGE_ORDER:
            self.stack.addWidget(self.pages[page])

    def _action(
        self,
        text: str,
        icon: QStyle.StandardPixmap,
        shortcut: QKeySequence | QKeySequence.StandardKey | str,
        tip: str,
    ) -> QAction:
        action = QAction(self.style().standardIcon(icon), text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
        action.setStatusTip(tip)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_new_job = self._action(
            "&New Replication Job",
            sp.SP_FileDialogNewFolder,
            QKeySequence.StandardKey.New,
            "Create a replication job: VMs, destination, settings and schedule",
        )
        self.act_edit_job = self._action(
            "&Edit Job",
            sp.SP_FileDialogInfoView,
            "Ctrl+E",
            "Change the selected job's settings in the same wizard",
        )
        self.act_run = self._action(
            "&Run Job", sp.SP_MediaPlay, "Ctrl+R", "Run the selected jobs now"
        )
        self.act_stop = self._action(
            "S&top Job",
            sp.SP_MediaStop,
            "Ctrl+Shift+R",
            "Stop the selected jobs' runs: VMs in progress keep their previous restore points",
        )
        self.act_stats = self._action(
            "&Statistics",
            sp.SP_FileDialogDetailedView,
            "Ctrl+I",
            "Open the session of the selection: its VMs, statistics and log",
        )
        self.act_reload_inventory = self._action(
            "Reload &Inventory",
            sp.SP_BrowserReload,
            "Ctrl+L",
            "Read the inventory of every managed server again",
        )
        self.act_add_server = self._action(
            "Add &Server...",
            sp.SP_DriveNetIcon,
            "Ctrl+Shift+H",
            "Add a vCenter Server or an ESXi host: its certificate is pinned, its password stored",
        )
        self.act_add_proxy = self._action(
            "Add &Proxy...",
            sp.SP_ComputerIcon,
            "Ctrl+Shift+X",
            "Add a host running the data mover service: it is connected to before it is stored",
        )
        self.act_add_repository = self._action(
            "Add &Repository...",
            sp.SP_DirIcon,
            "Ctrl+Shift+O",
            "Add a folder for replica metadata, on a source-site proxy or on this host",
        )
        # F5, not QKeySequence.Refresh: under GNOME that is also Ctrl+R, Run Job's shortcut,
        # and Qt ignores a shortcut two actions share.
        self.act_refresh = self._action(
            "Re&fresh",
            sp.SP_BrowserReload,
            "F5",
            "Read jobs, sessions, replicas and the infrastructure from the database now",
        )
        self.act_filter = self._action(
            "&Filter",
            sp.SP_FileDialogContentsView,
            QKeySequence.StandardKey.Find,
            "Go to the filter box of the current view",
        )
        self.act_quit = self._action(
            "&Quit", sp.SP_DialogCloseButton, QKeySequence.StandardKey.Quit, "Close ReplicaDesk"
        )
        self.act_new_job.triggered.connect(self.new_job)
        self.act_edit_job.triggered.connect(self.edit_selected_job)
        self.act_run.triggered.connect(self.run_selected_jobs)
        self.act_stop.triggered.connect(self.stop_selected_jobs)
        self.act_stats.triggered.connect(self.open_selected_session)
        self.act_reload_inventory.triggered.connect(self.load_inventory)
        self.act_add_server.triggered.connect(self.add_server)
        self.act_add_proxy.triggered.connect(self.add_proxy)
        self.act_add_repository.triggered.connect(self.add_repository)
        self.act_refresh.triggered.connect(self.watcher.refresh)
        self.act_filter.triggered.connect(self.focus_filter)
        self.act_quit.triggered.connect(self.close)
        self.page_actions: dict[Page, list[QAction]] = {
            Page.JOBS: [
                self.act_new_job,
                self.act_edit_job,
                self.act_run,
                self.act_stop,
                self.act_stats,
            ],
            Page.REPLICAS_READY: [self.act_stats],
            Page.REPLICAS_ACTIVE: [self.act_stats],
            Page.LAST_24H: [self.act_stats],
            Page.HISTORY: [self.act_stats],
            Page.INVENTORY: [self.act_reload_inventory],
            Page.SERVERS: [self.act_add_server, self.act_reload_inventory],
            Page.PROXIES: [self.act_add_proxy],
            Page.REPOSITORIES: [self.act_add_repository],
        }
        self.jobs_view.actions_for_menu = [
            self.act_new_job,
            self.act_edit_job,
            self.act_run,
            self.act_stop,
            self.act_stats,
        ]
        for view in (self.ready_view.table, self.active_view.table):
            view.actions_for_menu = [self.act_stats]
        for view in (self.last24_view, self.history_view):
            view.actions_for_menu = [self.act_stats]
        self.inventory_view.tree.addAction(self.act_reload_inventory)
        self.servers_view.table.actions_for_menu = [self.act_add_server, self.act_reload_inventory]
        self.proxies_view.table.actions_for_menu = [self.act_add_proxy]
        self.repositories_view.table.actions_for_menu = [self.act_add_repository]
        self.dr.add_actions()
        self.toolbar = QToolBar("Ribbon", self)
        self.toolbar.setObjectName("ribbon")
        self.toolbar.setMovable(False)
        self.toolbar.setIconSize(QSize(32, 32))
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _make_navigation(self) -> None:
        nav = QTreeWidget(self)
        nav.setHeaderHidden(True)
        nav.setRootIsDecorated(True)
        nav.setMinimumWidth(210)
        nav.setAccessibleName("Navigation")
        self.nav_items: dict[Page, QTreeWidgetItem] = {}
        for label, default, pages in NAVIGATION:
            group = QTreeWidgetItem(nav, [label])
            group.setData(0, PAGE_ROLE, str(default))
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            if not pages:
                self.nav_items[default] = group
            for page in pages:
                item = QTreeWidgetItem(group, [str(page)])
                item.setData(0, PAGE_ROLE, str(page))
                self.nav_items[page] = item
                if page == Page.JOBS:
                    replicas = QTreeWidgetItem(group, ["Replicas"])
                    replicas.setData(0, PAGE_ROLE, str(Page.REPLICAS_READY))
                    for sub in REPLICA_PAGES:
                        leaf = QTreeWidgetItem(replicas, [str(sub)])
                        leaf.setData(0, PAGE_ROLE, str(sub))
                        self.nav_items[sub] = leaf
        nav.expandAll()
        nav.currentItemChanged.connect(self._nav_changed)
        self.nav = nav
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(nav)
        split.addWidget(self.stack)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 1170])
        split.setChildrenCollapsible(False)
        self.setCentralWidget(split)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_refresh)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        jobs_menu = bar.addMenu("&Job")
        for a in (self.act_new_job, self.act_edit_job):
            jobs_menu.addAction(a)
        jobs_menu.addSeparator()
        for a in (self.act_run, self.act_stop, self.act_stats):
            jobs_menu.addAction(a)
        go = bar.addMenu("&Go")
        self.page_shortcuts: dict[Page, QAction] = {}
        for n, page in enumerate(PAGE_ORDER, start=1):
            action = QAction(GO_LABELS[page], self)
            action.setShortcut(QKeySequence(f"Ctrl+{n % 10}"))
            action.triggered.connect(lambda _checked=False, p=page: self.go_to(p))
            self.addAction(action)
            go.addAction(action)
            self.page_shortcuts[page] = action
        go.addSeparator()
        go.addAction(self.act_filter)
        self.inventory_menu = bar.addMenu("&Inventory")
        self.inventory_menu.addAction(self.act_reload_inventory)
        self.inventory_menu.addAction(self.act_add_server)
        self.inventory_menu.addAction(self.act_add_proxy)
        self.inventory_menu.addAction(self.act_add_repository)
        self.dr.add_menus(bar)

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.runs_label = QLabel("")
        self.poll_label = QLabel("Reading the database...")
        bar.addPermanentWidget(self.runs_label)
        bar.addPermanentWidget(self.poll_label)
        # The clock moves "Last 24 hours" and durations even when the database does not.
        self._minute = QTimer(self)
        self._minute.setInterval(60_000)
        self._minute.timeout.connect(self.last24_view.proxy.recheck)
        self._minute.start()

    def _connect(self) -> None:
        w = self.watcher
        w.jobsChanged.connect(self.jobs_model.set_rows)
        w.sessionsChanged.connect(self.sessions_model.set_rows)
        w.sessionsChanged.connect(self._sessions_changed)
        w.replicasChanged.connect(self.replicas_model.set_rows)
        w.serversChanged.connect(self.servers_model.set_rows)
        w.serversChanged.connect(self._servers_changed)
        w.proxiesChanged.connect(self.proxies_model.set_rows)
        w.repositoriesChanged.connect(self.repositories_model.set_rows)
        w.polled.connect(self._polled)
        w.failed.connect(self._watch_failed)
        w.jobsChanged.connect(self._update_actions)
        w.replicasChanged.connect(self._update_actions)
        self.workers.runsChanged.connect(self._update_actions)
        self.workers.runsChanged.connect(self._update_runs_label)
        self.workers.idle.connect(self._workers_idle)
        w.jobsChanged.connect(self._update_runs_label)
        for table in (
            self.jobs_view,
            self.ready_view.table,
            self.active_view.table,
            self.last24_view,
            self.history_view,
        ):
            table.selectionChanged.connect(self._update_actions)
        self.jobs_view.opened.connect(lambda _r: self.open_selected_session())
        self.ready_view.table.opened.connect(lambda _r: self.open_selected_session())
        self.active_view.table.opened.connect(lambda _r: self.open_selected_session())
        self.last24_view.opened.connect(self._open_session_record)
        self.history_view.opened.connect(self._open_session_record)

    def start(self) -> None:
        """Start reading the store (the inventory follows once the servers are known)."""
        self.watcher.start()
        self.dr.start()

    # -- navigation --------------------------------------------------------------------------------

    @property
    def page(self) -> Page:
        current = self.stack.currentWidget()
        return next(p for p, w in self.pages.items() if w is current)

    def show_page(self, page: Page) -> None:
        item = self.nav_items[page]
        if self.nav.currentItem() is not item:
            self.nav.setCurrentItem(item)  # -> _nav_changed
            return
        self._show(page)

    def _nav_changed(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if item is None:
            return
        self._show(Page(item.data(0, PAGE_ROLE)))

    def _show(self, page: Page) -> None:
        self.stack.setCurrentWidget(self.pages[page])
        self.toolbar.clear()
        for action in self.page_actions[page]:
            self.toolbar.addAction(action)
        if page not in (Page.INVENTORY,):
            self.toolbar.addSeparator()
            self.toolbar.addAction(self.act_refresh)
        self._update_actions()
        self.pageChanged.emit(str(page))

    def go_to(self, page: Page) -> None:
        """Show `page` with the keyboard in its table (or tree), as Ctrl+1... do."""
        self.show_page(page)
        widget = self.pages[page]
        if isinstance(widget, RecordTable):
            widget.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
        elif isinstance(widget, ReplicasView | InfrastructureView | PlansView):
            widget.table.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
        elif isinstance(widget, InventoryView):
            widget.tree.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def focus_filter(self) -> None:
        widget = self.pages[self.page]
        if isinstance(widget, RecordTable):
            widget.filter.setFocus()
        elif isinstance(widget, ReplicasView | InfrastructureView | PlansView):
            widget.table.filter.setFocus()
        elif isinstance(widget, InventoryView):
            widget.filter.setFocus()

    # -- selection and actions ---------------------------------------------------------------------

    def selected_jobs(self) -> list[JobRow]:
        return [r for r in self.jobs_view.selected() if isinstance(r, JobRow)]

    def _replica_table(self) -> RecordTable | None:
        if self.page == Page.REPLICAS_READY:
            return self.ready_view.table
        if self.page == Page.REPLICAS_ACTIVE:
            return self.active_view.table
        return None

    def _selected_session_id(self) -> int | None:
        page = self.page
        if page == Page.JOBS:
            for row in self.selected_jobs():
                worker = self.workers.runs.get(row.name)
                if worker is not None and worker.session_id is not None:
                    return worker.session_id
                session = row.running or row.last
                if session is not None:
                    return session.id
            return None
        if page in SESSION_PAGES:
            view = self.last24_view if page == Page.LAST_24H else self.history_view
            chosen = [s for s in view.selected() if isinstance(s, Session)]
            return chosen[0].id if chosen else None
        table = self._replica_table()
        if table is not None:
            rows = [r for r in table.selected() if isinstance(r, ReplicaRow)]
            if rows and rows[0].latest is not None:
                return rows[0].latest.session_id
        return None

    def _update_actions(self, *_args: object) -> None:
        jobs = self.selected_jobs() if self.page == Page.JOBS else []
        runnable = [j for j in jobs if j.running is None and j.name not in self.workers.runs]
        ours = [j for j in jobs if j.name in self.workers.runs]
        elsewhere = [j for j in jobs if j.running is not None and j.name not in self.workers.runs]
        self.act_run.setEnabled(bool(runnable))
        self.act_edit_job.setEnabled(len(jobs) == 1 and self.job_wizard is None)
        self.act_new_job.setEnabled(self.job_wizard is None)
        self.act_stop.setEnabled(any(not self.workers.runs[j.name].cancelled for j in ours))
        if elsewhere and not ours:
            self.act_stop.setStatusTip(
                "This run was started by the CLI or the service: stop it there"
            )
        else:
            self.act_stop.setStatusTip(
                "Stop the selected jobs' runs: VMs in progress keep their previous restore points"
            )
        # A run started here opens its session window as soon as it has a session.
        self.act_stats.setEnabled(bool(ours) or self._selected_session_id() is not None)

    def run_selected_jobs(self) -> list[RunJobWorker]:
        started = []
        for row in self.selected_jobs():
            if row.running is not None or row.name in self.workers.runs:
                continue
            started.append(self._start_run(row.name))
        self._update_actions()
        return started

    def _start_run(self, job: str) -> RunJobWorker:
        worker = self.workers.run_job(self.store, job)
        worker.sessionStarted.connect(self._run_session_started)
        worker.failed.connect(self._run_failed)
        worker.finished.connect(self._run_finished)
        self.statusBar().showMessage(f"Job {job} started", 5000)
        self.runStarted.emit(worker)
        return worker

    # -- the job wizard ----------------------------------------------------------------------------

    def wizard_context(self) -> WizardContext:
        """What the wizard needs, from what the watcher and the inventory worker read."""
        return WizardContext(
            servers=tuple(self.servers_model.records()),
            proxies=tuple(self.proxies_model.records()),
            repositories=tuple(self.repositories_model.records()),
            jobs=tuple(r.name for r in self.jobs_model.records()),
            inventories=dict(self.inventory_model.inventories),
        )

    def new_job(self) -> JobWizard:
        return self.open_wizard(None)

    def edit_selected_job(self) -> JobWizard | None:
        jobs = self.selected_jobs()
        return self.open_wizard(jobs[0].job) if len(jobs) == 1 else None

    def open_wizard(self, job: ReplicationJob | None) -> JobWizard:
        """The job wizard for `job` (None: a new job), or the one already open."""
        if self.job_wizard is not None:
            self.job_wizard.raise_()
            self.job_wizard.activateWindow()
            return self.job_wizard
        wizard = JobWizard(self.store, self.workers, self.wizard_context(), job, self)
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        wizard.jobSaved.connect(self._job_saved)
        wizard.finished.connect(self._wizard_closed)
        self.job_wizard = wizard
        self._update_actions()
        wizard.show()
        self.wizardOpened.emit(wizard)
        return wizard

    def _wizard_closed(self, _result: int) -> None:
        self.job_wizard = None
        self._update_actions()

    def _job_saved(self, job: ReplicationJob, run_now: bool) -> None:
        self.statusBar().showMessage(f"Job {job.name} saved", 5000)
        self.watcher.refresh()
        if run_now and job.name not in self.workers.runs:
            self._start_run(job.name)
            self._update_actions()

    def stop_selected_jobs(self) -> None:
        for row in self.selected_jobs():
            worker = self.workers.runs.get(row.name)
            if worker is not None:
                worker.cancel()
                self.statusBar().showMessage(f"Stopping job {row.name}...", 5000)
        self._update_actions()

    def open_selected_session(self) -> None:
        sid = self._selected_session_id()
        if sid is not None:
            self.open_session(sid)
            return
        # A run this console just started has no session yet: open it when it has one.
        for row in self.selected_jobs():
            worker = self.workers.runs.get(row.name)
            if worker is not None:
                worker.sessionStarted.connect(self._open_started_session)

    def _open_started_session(self, event: object) -> None:
        sid = getattr(event, "session_id", None)
        if isinstance(sid, int):
            self.open_session(sid)

    def _open_session_record(self, record: object) -> None:
        if isinstance(record, Session):
            self.open_session(record.id)

    def open_session(self, session_id: int) -> SessionWindow:
        window = self.session_windows.get(session_id)
        if window is None:
            worker = next(
                (w for w in self.workers.runs.values() if w.session_id == session_id), None
            )
            window = SessionWindow(session_id, self.watcher, worker, self)
            window.closed.connect(self._session_closed)
            self.session_windows[session_id] = window
            self.sessionOpened.emit(window)
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    def _session_closed(self, session_id: int) -> None:
        window = self.session_windows.pop(session_id, None)
        if window is not None:
            window.deleteLater()

    # -- work reports ------------------------------------------------------------------------------

    def _run_session_started(self, _event: object) -> None:
        self.watcher.refresh()
        self._update_actions()

    def _run_finished(self, session: Session) -> None:
        self.statusBar().showMessage(
            f"Job {session.job}: session {session.id} ended {fmt.status(session.status)}", 10000
        )
        self.watcher.refresh()

    def _run_failed(self, message: str, detail: str) -> None:
        self.show_error(message, detail)
        self.watcher.refresh()

    def show_error(self, message: str, detail: str = "") -> QMessageBox:
        """An error in words, with the detail one click away (non-blocking)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "ReplicaDesk", message, parent=self)
        if detail:
            box.setDetailedText(detail)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(message, 15000)
        return box

    def _watch_failed(self, message: str, detail: str) -> None:
        self.poll_label.setText("Database not readable")
        self.poll_label.setToolTip(f"{message}\n\n{detail}")
        self.statusBar().showMessage(message, 15000)

    def _polled(self, at: dt.datetime) -> None:
        self._last_poll = at
        self.poll_label.setText(f"Updated {fmt.when(at)[11:]}")
        self.poll_label.setToolTip(f"Database: {self.store.path}")

    def _sessions_changed(self, _sessions: list[Session]) -> None:
        self.last24_view.proxy.recheck()

    def _in_last_24h(self, session: Session) -> bool:
        return session.ended is None or session.started >= _utcnow() - DAY

    def _update_runs_label(self, *_args: object) -> None:
        running = {r.name for r in self.jobs_model.records() if r.running is not None}
        running |= set(self.workers.runs)
        self.runs_label.setText(f"{len(running)} job(s) running" if running else "No job running")

    # -- inventory ---------------------------------------------------------------------------------

    def _servers_changed(self, servers: list[object]) -> None:
        addresses = [getattr(s, "address", "") for s in servers]
        self.inventory_model.set_servers(addresses)
        known = set(self.inventory_model.inventories) | set(self.inventory_model.errors)
        missing = [a for a in addresses if a not in known]
        if missing and self._inventory_worker is None:
            self.load_inventory(missing)

    def load_inventory(self, addresses: list[str] | None = None) -> InventoryWorker | None:
        """Read the inventory of the given servers (default: all) on a worker."""
        if self._inventory_worker is not None:
            return self._inventory_worker
        wanted = addresses or [s.address for s in self.servers_model.records()]
        if not wanted:
            return None
        worker = InventoryWorker(self.store, list(wanted))
        worker.loaded.connect(self.inventory_model.set_inventory)
        worker.serverFailed.connect(self.inventory_model.set_error)
        worker.failed.connect(self.show_error)
        worker.done.connect(self._inventory_done)
        self._inventory_worker = worker
        self.act_reload_inventory.setEnabled(False)
        self.inventory_view.status.setText(f"Reading {len(wanted)} server(s)...")
        self.workers.start(worker)
        return worker

    def _inventory_done(self) -> None:
        self._inventory_worker = None
        self.act_reload_inventory.setEnabled(True)

    def add_server(self) -> AddServerDialog:
        """The Add Server dialog (one at a time); the table and inventory follow what it adds."""
        if self.server_dialog is None:
            dialog = AddServerDialog(self.store, self.workers, self)
            dialog.added.connect(self._server_added)
            dialog.finished.connect(self._server_dialog_closed)
            self.server_dialog = dialog
            self.serverDialogOpened.emit(dialog)
        self.server_dialog.open()
        self.server_dialog.raise_()
        return self.server_dialog

    def _server_added(self, server: ManagedServer) -> None:
        self.statusBar().showMessage(f"Added managed server {server.address}", 15000)
        self.watcher.refresh()

    def _server_dialog_closed(self, _result: int) -> None:
        if self.server_dialog is not None:
            self.server_dialog.deleteLater()
            self.server_dialog = None

    def add_proxy(self) -> AddProxyDialog:
        """The Add Proxy dialog (one at a time); the table follows what it adds."""
        if self.proxy_dialog is None:
            dialog = AddProxyDialog(self.store, self.workers, self)
            dialog.added.connect(self._proxy_added)
            dialog.finished.connect(self._proxy_dialog_closed)
            self.proxy_dialog = dialog
            self.proxyDialogOpened.emit(dialog)
        self.proxy_dialog.open()
        self.proxy_dialog.raise_()
        return self.proxy_dialog

    def _proxy_added(self, proxy: BackupProxy) -> None:
        self.statusBar().showMessage(f"Added backup proxy {proxy.name}", 15000)
        self.watcher.refresh()

    def _proxy_dialog_closed(self, _result: int) -> None:
        if self.proxy_dialog is not None:
            self.proxy_dialog.deleteLater()
            self.proxy_dialog = None

    def add_repository(self) -> AddRepositoryDialog:
        """The Add Repository dialog (one at a time); the table follows what it adds."""
        if self.repository_dialog is None:
            dialog = AddRepositoryDialog(self.store, self)
            dialog.added.connect(self._repository_added)
            dialog.finished.connect(self._repository_dialog_closed)
            self.repository_dialog = dialog
            self.repositoryDialogOpened.emit(dialog)
        self.repository_dialog.open()
        self.repository_dialog.raise_()
        return self.repository_dialog

    def _repository_added(self, repo: Repository) -> None:
        self.statusBar().showMessage(f"Added repository {repo.name}", 15000)
        self.watcher.refresh()

    def _repository_dialog_closed(self, _result: int) -> None:
        if self.repository_dialog is not None:
            self.repository_dialog.deleteLater()
            self.repository_dialog = None

    # -- closing -----------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        question = self._close_question()
        if question and not self._closing:
            answer = QMessageBox.question(self, "ReplicaDesk", question)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if self.workers.busy:
            # Runs clean up when cancelled; the window closes when every worker has ended.
            self._closing = True
            self.workers.cancel_all()
            self.statusBar().showMessage("Stopping the runs before closing...")
            event.ignore()
            return
        for window in list(self.session_windows.values()):
            window.close()
        self.watcher.stop()
        self.dr.stop()
        super().closeEvent(event)

    def _close_question(self) -> str:
        """What closing now would stop, as a question ("" when nothing would be)."""
        parts = []
        if self.workers.runs:
            parts.append(
                f"{len(self.workers.runs)} job(s) are running: VMs in progress keep their "
                "previous restore points."
            )
        ops = self.dr.running_operations()
        if ops:
            parts.append(
                f"{ops} replica operation(s) or plan action(s) are in progress: those that can be "
                "cancelled stop at their next safe point (a failback is rolled back to the "
                "failover, a plan starts no further VM); the others finish first."
            )
        return " ".join(parts) + " Stop them and close?" if parts else ""

    def _workers_idle(self) -> None:
        if self._closing:
            self.close()

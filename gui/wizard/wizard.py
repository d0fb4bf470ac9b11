"""`JobWizard`: the New Replication Job wizard, and Edit job (the same wizard, filled).

Steps as DOMAIN.md lists them, those that apply to what core replicates: Name, Virtual
machines, Destination, Network and Re-IP (when ticked on the Name step), Job settings, Data
transfer, Seeding (when ticked on the Name step), Guest processing, Schedule, Summary. Each
step validates on Next by building its core objects; Finish builds the whole `ReplicationJob`
(a problem found then takes the user back to its step, with the reason beside the field) and
stores it through a `SaveJobWorker`: the GUI thread never
writes the database. `jobSaved` then tells the main window, which runs the job if asked.

Inventories: the source tree starts with what the console has loaded; a server the console has
not read yet, and the target server every time it is chosen (free space and networks matter),
are read by `InventoryWorker`s. Cancel stores nothing.

`add_objects` is how the main window's "Add to Replication Job" (and drops on its Jobs view)
hand VMs and containers to the wizard: it walks to the Virtual machines step and adds them
there (gui.wizard.adding), saying on that step what was added.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QBoxLayout,
    QFormLayout,
    QListWidget,
    QListWidgetItem,
    QWidget,
    QWizard,
)

from core.errors import InvalidSettingError
from core.model.job import ReplicationJob
from core.store.store import Store
from core.vsphere.models import Inventory
from gui.models.inventory import DraggedObject
from gui.wizard.adding import Added, add_to_vms_page
from gui.wizard.base import WizardPage
from gui.wizard.context import SaveJobWorker, WizardContext
from gui.wizard.fields import built
from gui.wizard.guest_pages import GuestPage, SeedingPage
from gui.wizard.settings_pages import SchedulePage, SettingsPage, SummaryPage, TransferPage
from gui.wizard.source_pages import NamePage, VmsPage
from gui.wizard.target_pages import DestinationPage, NetworkPage, ReIpPage
from gui.workers import InventoryWorker, Workers


class Step(IntEnum):
    NAME = 0
    VMS = 1
    DESTINATION = 2
    NETWORK = 3
    REIP = 4
    SETTINGS = 5
    TRANSFER = 6
    SEEDING = 7
    GUEST = 8
    SCHEDULE = 9
    SUMMARY = 10


# Which step owns a field path of the job (the first matching prefix wins).
PATH_STEPS = (
    ("name", Step.NAME),
    ("description", Step.NAME),
    ("source", Step.VMS),
    ("destination", Step.DESTINATION),
    ("network", Step.NETWORK),
    ("reip", Step.REIP),
    ("settings.quiesce_failure", Step.GUEST),
    ("settings.quiesce", Step.GUEST),
    ("settings", Step.SETTINGS),
    ("transfer", Step.TRANSFER),
    ("seeding", Step.SEEDING),
    ("schedule", Step.SCHEDULE),
)


class JobWizard(QWizard):
    jobSaved = Signal(object, bool)  # the stored ReplicationJob, run it now
    inventoryArrived = Signal(str)  # a server's inventory was read (or failed)
    saveFailed = Signal(str)  # why storing the job failed

    def __init__(
        self,
        store: Store,
        workers: Workers,
        context: WizardContext,
        job: ReplicationJob | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.workers = workers
        self.context = context
        self.original = job
        self.inventories: dict[str, Inventory] = dict(context.inventories)
        self.inventory_errors: dict[str, str] = {}
        self.loading: set[str] = set()
        self._inventory_workers: list[InventoryWorker] = []
        self.saver: SaveJobWorker | None = None
        self.saved_job: ReplicationJob | None = None
        self.setWindowTitle("Edit Replication Job" if job else "New Replication Job")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.resize(1100, 720)

        self.name_page = NamePage(self)
        self.vms_page = VmsPage(self)
        self.destination_page = DestinationPage(self)
        self.network_page = NetworkPage(self)
        self.reip_page = ReIpPage(self)
        self.settings_page = SettingsPage(self)
        self.transfer_page = TransferPage(self)
        self.seeding_page = SeedingPage(self)
        self.guest_page = GuestPage(self)
        self.schedule_page = SchedulePage(self)
        self.summary_page = SummaryPage(self)
        self.step_pages: dict[Step, WizardPage] = {
            Step.NAME: self.name_page,
            Step.VMS: self.vms_page,
            Step.DESTINATION: self.destination_page,
            Step.NETWORK: self.network_page,
            Step.REIP: self.reip_page,
            Step.SETTINGS: self.settings_page,
            Step.TRANSFER: self.transfer_page,
            Step.SEEDING: self.seeding_page,
            Step.GUEST: self.guest_page,
            Step.SCHEDULE: self.schedule_page,
            Step.SUMMARY: self.summary_page,
        }
        for step, page in self.step_pages.items():
            self.setPage(int(step), page)
        self.setStartId(int(Step.NAME))

        self.steps = QListWidget()
        self.steps.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.steps.setFixedWidth(170)
        self.steps.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.setSideWidget(self.steps)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Finish")
        for page in self.step_pages.values():
            layout = page.layout()
            if isinstance(layout, QFormLayout):
                layout.addRow(page.message)
            elif isinstance(layout, QBoxLayout):
                layout.addWidget(page.message)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.reject)
        self.currentIdChanged.connect(self._show_steps)

        if job is not None:
            for page in self.step_pages.values():
                page.fill(job)
        self._show_steps()
        for address in self._source_servers():
            if address not in self.inventories:
                self.request_inventory(address)
        self.vms_page.set_inventories()

    # -- steps ------------------------------------------------------------------------------------

    def active_steps(self) -> list[Step]:
        steps = list(Step)
        if not self.name_page.network.isChecked():
            steps.remove(Step.NETWORK)
        if not self.name_page.reip.isChecked():
            steps.remove(Step.REIP)
        if not self.name_page.seeding.isChecked():
            steps.remove(Step.SEEDING)
        return steps

    def nextId(self) -> int:
        steps = self.active_steps()
        current = Step(self.currentId())
        later = [s for s in steps if s > current]
        return int(later[0]) if later else -1

    def steps_changed(self) -> None:
        self._show_steps()

    def _show_steps(self, *_args: object) -> None:
        self.steps.clear()
        current = self.currentId()
        for step in self.active_steps():
            item = QListWidgetItem(self.step_pages[step].step)
            if int(step) == current:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.steps.addItem(item)

    def go_to(self, step: Step) -> None:
        """Walk to `step` as Back and Next do (each Next checks its page: a page that refuses
        keeps the wizard where it is, with the reason shown)."""
        while self.currentId() > int(step) and self.currentId() != self.startId():
            self.back()
        while self.currentId() < int(step):
            before = self.currentId()
            self.next()
            if self.currentId() == before:
                return

    def free_name(self) -> str:
        """The first "Replication Job N" no job has (a new job's name until the user types)."""
        n = 1
        while f"Replication Job {n}" in self.context.jobs:
            n += 1
        return f"Replication Job {n}"

    def add_objects(self, objects: Sequence[DraggedObject]) -> Added:
        """VMs and containers from the main window: shown on the Virtual machines step, added to
        its list (nothing is stored before Finish). A new job without a name gets a free one,
        so the Name step lets the wizard through; it stays editable."""
        if self.original is None and not self.name_page.name.text():
            self.name_page.name.setText(self.free_name())
        self.go_to(Step.VMS)
        server = self.original.source.server if self.original is not None else ""
        added = add_to_vms_page(self.vms_page, objects, server)
        self.vms_page.say(added.text, error=not added.added)
        if self.currentId() != int(Step.VMS):
            self.say(added.text, error=not added.added)
        return added

    def say(self, text: str, error: bool = True) -> None:
        """A message at the bottom of the current step (errors no field of it claims, or the
        progress of Finish)."""
        page = self.currentPage()
        if isinstance(page, WizardPage):
            page.say(text, error)

    # -- inventories ------------------------------------------------------------------------------

    def _source_servers(self) -> list[str]:
        if self.original is not None:
            return [self.original.source.server]
        return [s.address for s in self.context.servers]

    def request_inventory(self, address: str, fresh: bool = False) -> None:
        """Read `address`'s inventory on a worker, unless it is known (or `fresh` is asked)."""
        if address in self.loading or (address in self.inventories and not fresh):
            return
        worker = InventoryWorker(self.store, [address])
        worker.loaded.connect(self._inventory_loaded)
        worker.serverFailed.connect(self._inventory_failed)
        worker.failed.connect(self._inventory_failed_all)
        worker.done.connect(self._inventory_done)
        self.loading.add(address)
        self._inventory_workers.append(worker)
        self.workers.start(worker)

    def _inventory_loaded(self, address: str, inventory: object) -> None:
        if isinstance(inventory, Inventory):
            self.inventories[address] = inventory
            self.inventory_errors.pop(address, None)
        self.loading.discard(address)
        self.vms_page.set_inventories()
        self.inventoryArrived.emit(address)

    def _inventory_failed(self, address: str, message: str) -> None:
        self.inventory_errors[address] = message
        self.loading.discard(address)
        self.vms_page.set_inventories()
        self.inventoryArrived.emit(address)

    def _inventory_failed_all(self, message: str, _detail: str) -> None:
        self.say(message)

    def _inventory_done(self) -> None:
        worker = self.sender()
        if isinstance(worker, InventoryWorker):
            for address in worker.addresses:
                if address in self.loading:
                    self.loading.discard(address)
                    self.inventoryArrived.emit(address)
            if worker in self._inventory_workers:
                self._inventory_workers.remove(worker)

    # -- the job ----------------------------------------------------------------------------------

    def build_job(self) -> ReplicationJob:
        """The job the steps describe; InvalidSettingError names the field at fault."""
        self.name_page.check()
        name = self.name_page.name.text()
        description = self.name_page.description.toPlainText()
        source = self.vms_page.selection()
        destination = self.destination_page.destination()
        network = self.network_page.network_map()
        reip = self.reip_page.job_rules()
        settings = self.settings_page.settings()
        transfer = self.transfer_page.transfer()
        seeding = self.seeding_page.seeding()
        schedule = self.schedule_page.schedule()
        return built(
            "",
            lambda: ReplicationJob(
                name=name,
                source=source,
                destination=destination,
                settings=settings,
                description=description,
                network=network,
                reip=reip,
                transfer=transfer,
                schedule=schedule,
                seeding=seeding,
            ),
        )

    def step_of(self, path: str) -> Step:
        for prefix, step in PATH_STEPS:
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                return step
        return Step.SUMMARY

    def show_error(self, error: InvalidSettingError) -> Step:
        """Go back to the step owning `error`'s field and show the reason beside it."""
        step = self.step_of(error.field)
        while self.currentId() != int(step) and int(step) in self.visitedIds():
            if self.currentId() == self.startId():
                break
            self.back()
        page = self.step_pages[step]
        if self.currentId() != int(step) or page.show_error(error) is None:
            self.say(str(error))
        return step

    def accept(self) -> None:
        """Finish: build the job, store it on a worker; the wizard closes once it is stored."""
        if self.saved_job is not None:
            super().accept()
            return
        if self.saver is not None:
            return
        try:
            job = self.build_job()
        except InvalidSettingError as e:
            self.show_error(e)
            return
        self.say("")
        saver = SaveJobWorker(self.store, job, replace=self.original is not None)
        saver.saved.connect(self._saved)
        saver.failed.connect(self._save_failed)
        self.saver = saver
        for b in (QWizard.WizardButton.FinishButton, QWizard.WizardButton.BackButton):
            self.button(b).setEnabled(False)
        self.say("Saving the job...", error=False)
        self.workers.start(saver)

    def _saved(self, job: ReplicationJob) -> None:
        self.saved_job = job
        self.saver = None
        self.jobSaved.emit(job, self.summary_page.run_now.isChecked())
        super().accept()

    def _save_failed(self, message: str, _detail: str) -> None:
        self.saver = None
        self.say(f"The job was not saved: {message}")
        for b in (QWizard.WizardButton.FinishButton, QWizard.WizardButton.BackButton):
            self.button(b).setEnabled(True)
        self.saveFailed.emit(message)

    def reject(self) -> None:
        if self.saver is not None:
            return  # being stored: the outcome decides (never half-written either way)
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.saver is not None:
            event.ignore()
            return
        super().closeEvent(event)

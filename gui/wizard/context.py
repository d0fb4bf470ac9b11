"""What the wizard is given, and the one piece of work it asks for: storing the job.

`WizardContext` is what the console already knows, read by the `StoreWatcher` on its thread:
managed servers, proxies, repositories, the names of the other jobs, and the inventories the
console has loaded. The wizard never reads the store itself; inventories it does not have yet
are read by `InventoryWorker`s, and Finish hands the built job to a `SaveJobWorker`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import Signal

from core.model.infra import BackupProxy, ManagedServer, Repository
from core.model.job import ReplicationJob
from core.store.store import Store
from core.vsphere.models import Inventory
from gui.workers import Worker


@dataclass(frozen=True)
class WizardContext:
    servers: tuple[ManagedServer, ...]
    proxies: tuple[BackupProxy, ...]
    repositories: tuple[Repository, ...]
    jobs: tuple[str, ...]  # names of the jobs already stored
    inventories: dict[str, Inventory] = field(default_factory=dict)


class SaveJobWorker(Worker):
    """Adds a new job or replaces an existing one (`store.jobs` checks the references: servers,
    repository, proxies and the job it runs after must exist)."""

    saved = Signal(object)  # the ReplicationJob as stored

    def __init__(self, store: Store, job: ReplicationJob, replace: bool) -> None:
        super().__init__()
        self.store = store
        self.job = job
        self.replace = replace

    def work(self) -> None:
        if self.replace:
            self.store.jobs.update(self.job)
        else:
            self.store.jobs.add(self.job)
        self.saved.emit(self.job)

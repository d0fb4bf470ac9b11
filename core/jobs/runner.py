"""Running a replication job: one session, its VMs in parallel within the proxies' task limits.

`run_job` is what `replicadesk job run`, the service's scheduler and the console call. It takes
the job's lock in the store (a job started from the CLI while the service runs is refused with a
clear message, and the other way round), opens a session, logs in to the source and target
servers, expands the job's sources, and runs a `VmReplication` per VM on a pool of worker
threads; each VM's disk tasks wait for a slot on a target proxy. The session ends Success,
Warning (some VM had warnings, or a VM the job names is gone) or Failed (some VM failed), with
the totals of its VMs. `only_vms` re-runs just the VMs that failed (the service's retries).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from core.errors import CancelledError, JobRunError, ReplicaDeskError
from core.jobs import servers
from core.jobs.context import ProxyPool, RunContext
from core.jobs.events import EventSink, SessionFinished, SessionStarted, ignore
from core.jobs.sources import expand
from core.jobs.vmtask import TaskOutcome, VmReplication
from core.model.infra import BackupProxy
from core.model.job import ReplicationJob
from core.model.runs import RunStatus, RunTrigger, Session, Severity, TransferStats, combine
from core.store.store import Store
from core.vsphere.inventory import read_inventory

MAX_PARALLEL_VMS = 8


def job_lock_key(job: str) -> str:
    return f"job:{job}"


def target_proxies(store: Store, job: ReplicationJob, source_site: str) -> list[BackupProxy]:
    """The job's chosen target proxies, or (automatic) every proxy not on the source's site."""
    chosen = job.transfer.target_proxies.proxies
    if chosen:
        return [store.proxies.get(name) for name in chosen]
    return [p for p in store.proxies.list() if p.site != source_site]


def run_job(
    store: Store,
    job_name: str,
    *,
    trigger: RunTrigger = RunTrigger.MANUAL,
    attempt: int = 0,
    only_vms: Collection[str] | None = None,
    cancel: threading.Event | None = None,
    events: EventSink = ignore,
) -> Session:
    cancel = cancel or threading.Event()
    job = store.jobs.get(job_name)
    with store.locks.hold([job_lock_key(job.name)], f"job {job.name}"):
        session = store.sessions.start(job.name, trigger, attempt)
        sid = session.id
        statuses: list[RunStatus] = []
        totals = TransferStats()
        try:
            statuses, totals = _run(store, job, sid, only_vms, cancel, events)
            status = _overall(statuses)
        except CancelledError:
            store.sessions.log(sid, Severity.ERROR, "the run was cancelled")
            status = RunStatus.FAILED
        except ReplicaDeskError as e:
            store.sessions.log(sid, Severity.ERROR, str(e))
            status = RunStatus.FAILED
        except BaseException as e:
            store.sessions.log(sid, Severity.ERROR, f"internal error: {type(e).__name__}: {e}")
            store.sessions.finish(sid, RunStatus.FAILED, totals)
            events(SessionFinished(sid, job.name, RunStatus.FAILED))
            raise
        if status == RunStatus.SUCCESS and any(
            e.severity == Severity.WARNING for e in store.sessions.get(sid).log
        ):
            status = RunStatus.WARNING
        finished = store.sessions.finish(sid, status, totals)
        events(SessionFinished(sid, job.name, status))
        return finished


def _overall(statuses: list[RunStatus]) -> RunStatus:
    if RunStatus.FAILED in statuses:
        return RunStatus.FAILED
    if RunStatus.WARNING in statuses:
        return RunStatus.WARNING
    return RunStatus.SUCCESS


def _run(
    store: Store,
    job: ReplicationJob,
    sid: int,
    only_vms: Collection[str] | None,
    cancel: threading.Event,
    events: EventSink,
) -> tuple[list[RunStatus], TransferStats]:
    if job.settings.repository is None:
        raise JobRunError(f"job {job.name}", "it has no metadata repository")
    repository = store.repositories.get(job.settings.repository)
    source_server = store.servers.get(job.source.server)
    target_server = store.servers.get(job.destination.server)
    proxies = target_proxies(store, job, repository.site)
    with (
        servers.connect_stored(store, source_server.address) as source,
        servers.connect_stored(store, target_server.address) as target,
    ):
        source_inv = read_inventory(source)
        target_inv = read_inventory(target)
        expansion = expand(job.source, source_inv)
        for gone in expansion.missing:
            store.sessions.log(
                sid, Severity.WARNING, f"{gone} is in the job but no longer in the inventory"
            )
        chosen = [s for s in expansion.vms if only_vms is None or s.vm.moref in set(only_vms)]
        events(SessionStarted(sid, job.name, len(chosen)))
        names = ", ".join(p.name for p in proxies) or "none (the backup server writes itself)"
        store.sessions.log(
            sid, Severity.INFO, f"{len(chosen)} VM(s) to process; target proxies: {names}"
        )
        ctx = RunContext(
            store=store,
            job=job,
            session_id=sid,
            source_server=source_server,
            target_server=target_server,
            source=source,
            target=target,
            source_inventory=source_inv,
            target_inventory=target_inv,
            repository=repository,
            proxies=ProxyPool(proxies),
            cancel=cancel,
            events=events,
        )
        workers = max(1, min(MAX_PARALLEL_VMS, ctx.proxies.slots, len(chosen)))
        with ThreadPoolExecutor(workers, thread_name_prefix="vm-task") as pool:
            outcomes: list[TaskOutcome] = list(
                pool.map(lambda s: VmReplication(ctx, s).run(), chosen)
            )
    total = combine(o.stats for o in outcomes)
    if cancel.is_set():
        if all(o.status != RunStatus.FAILED for o in outcomes):
            store.sessions.log(
                sid, Severity.WARNING, "cancel was asked after every VM had its restore point"
            )
        else:
            store.sessions.log(
                sid,
                Severity.ERROR,
                "the run was cancelled: the VMs it had not finished keep their earlier restore "
                "points",
            )
    return [o.status for o in outcomes], total

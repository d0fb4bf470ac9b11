"""Table and tree models without a window: filled from a real store after a real run on the lab,
and from the lab's real inventories."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, Qt

from core.errors import InvalidSettingError
from core.jobs.events import TaskProgress
from core.lab.register import inventories
from core.model.infra import Protocol
from core.model.replicas import ReplicaState
from core.model.runs import RunStatus
from gui.models.base import STATUS_COLORS, Role
from gui.models.filters import RecordFilterProxy
from gui.models.infra import ProxiesModel, RepositoriesModel, ServersModel
from gui.models.inventory import (
    MIME_OBJECTS,
    InventoryModel,
    NodeKind,
    TreeMode,
    objects_from_mime,
)
from gui.models.jobs import JobsModel
from gui.models.replicas import ReplicasModel, RestorePointsModel
from gui.models.sessions import LogModel, SessionsModel, TasksModel, log_lines
from gui.render import Relay
from gui.snapshot import read_home, read_session
from tests.gui.conftest import IDLE_JOB, JOB, JOB_VMS, Ran

BOTTLENECK_LINE = r"Source \d+% > Proxy \d+% > Network \d+% > Target \d+%"


def text(model: object, row: int, column: int) -> str:
    return model.index(row, column).data()  # type: ignore[attr-defined,no-any-return]


def test_jobs_model_last_result_and_next_run(ran: Ran) -> None:
    model = JobsModel()
    model.set_rows(read_home(ran.store).jobs)
    assert model.rowCount() == 2 and model.columnCount() == len(JobsModel.columns)
    row = model.row_of(JOB)
    assert text(model, row, JobsModel.NAME) == JOB
    assert text(model, row, JobsModel.OBJECTS) == "3 VMs"
    assert text(model, row, JobsModel.STATUS) == "Stopped"
    assert text(model, row, JobsModel.LAST_RESULT) == "Success"
    assert text(model, row, JobsModel.NEXT_RUN) == "Not scheduled"
    assert (
        model.index(row, JobsModel.LAST_RESULT).data(Qt.ItemDataRole.ForegroundRole)
        == STATUS_COLORS[RunStatus.SUCCESS]
    )
    assert model.index(row, 0).data(Role.RECORD).last.id == ran.session.id
    idle = model.row_of(IDLE_JOB)
    assert text(model, idle, JobsModel.LAST_RUN) == ""
    assert text(model, idle, JobsModel.LAST_RESULT) == ""


def test_set_rows_merges_by_key_and_keeps_unchanged_rows(ran: Ran) -> None:
    model = JobsModel()
    rows = list(read_home(ran.store).jobs)
    model.set_rows(rows)
    changed: list[int] = []
    inserted: list[int] = []
    removed: list[int] = []
    model.dataChanged.connect(lambda a, _b: changed.append(a.row()))
    model.rowsInserted.connect(lambda _p, first, _l: inserted.append(first))
    model.rowsRemoved.connect(lambda _p, first, _l: removed.append(first))
    model.set_rows(rows)
    assert (changed, inserted, removed) == ([], [], [])
    busy = dataclasses.replace(rows[0], running=ran.session)
    busy_row = model.row_of(busy.name)
    model.set_rows([busy, rows[1]])
    assert changed == [busy_row] and not inserted and not removed
    assert text(model, busy_row, JobsModel.STATUS) == "Running"
    model.set_rows([rows[1]])
    assert removed == [busy_row]
    assert model.rowCount() == 1 and model.row_of(rows[1].name) == 0
    model.set_rows(rows)
    assert inserted == [1] and model.rowCount() == 2


def test_proxy_sorts_by_value_and_filters_any_column(ran: Ran) -> None:
    model = JobsModel()
    model.set_rows(read_home(ran.store).jobs)
    proxy = RecordFilterProxy(model)
    proxy.sort(JobsModel.LAST_RUN, Qt.SortOrder.DescendingOrder)
    assert proxy.record(0).name == JOB  # the job that ran sorts above the one that never did
    proxy.setFilterFixedString("3 vms")  # case-insensitive, any column
    assert [r.name for r in proxy.records()] == [JOB]
    proxy.setFilterFixedString("")
    proxy.set_predicate(lambda r: r.last is None)
    assert [r.name for r in proxy.records()] == [IDLE_JOB]


def test_sessions_and_tasks_of_a_real_run(ran: Ran) -> None:
    sessions = SessionsModel()
    sessions.set_rows(read_home(ran.store).sessions)
    row = sessions.row_of(ran.session.id)
    assert text(sessions, row, SessionsModel.JOB) == JOB
    assert text(sessions, row, SessionsModel.STATUS) == "Success"
    assert text(sessions, row, SessionsModel.TRIGGER) == "Manual"
    assert sessions.index(row, SessionsModel.PROCESSED).data(Role.SORT) > 0
    detail = read_session(ran.store, ran.session.id)
    tasks = TasksModel()
    tasks.set_rows(detail.tasks)
    assert sorted(text(tasks, r, TasksModel.VM) for r in range(tasks.rowCount())) == sorted(JOB_VMS)
    for r in range(tasks.rowCount()):
        task = tasks.record(r)
        assert tasks.index(r, TasksModel.PROGRESS).data(Role.PROGRESS) == 100
        assert tasks.index(r, TasksModel.PROCESSED).data(Role.SORT) == task.stats.processed_bytes
        assert text(tasks, r, TasksModel.BOTTLENECK) == task.stats.bottleneck_line
        assert re.fullmatch(BOTTLENECK_LINE, text(tasks, r, TasksModel.BOTTLENECK))
        assert text(tasks, r, TasksModel.RATE).endswith("/s")


def test_live_progress_of_a_running_task(ran: Ran) -> None:
    """A task as the store shows it mid-run, with the runner's per-disk progress applied."""
    task = read_session(ran.store, ran.session.id).tasks[0]
    running = dataclasses.replace(task, status=RunStatus.RUNNING, ended=None)
    model = TasksModel()
    model.set_rows([running])
    assert model.index(0, TasksModel.PROGRESS).data(Role.PROGRESS) == -1
    assert text(model, 0, TasksModel.PROGRESS) == "Processing"
    repainted: list[int] = []
    model.dataChanged.connect(lambda a, _b: repainted.append(a.row()))
    mib = 1 << 20
    model.apply_progress(
        TaskProgress(task.session_id, task.id, task.vm_name, 2000, "copy", mib, 4 * mib)
    )
    assert repainted == [0]
    assert model.index(0, TasksModel.PROGRESS).data(Role.PROGRESS) == 25
    assert text(model, 0, TasksModel.PROGRESS) == "25% (copy)"
    model.apply_progress(
        TaskProgress(task.session_id, task.id, task.vm_name, 2001, "copy", 0, 4 * mib)
    )
    assert model.index(0, TasksModel.PROGRESS).data(Role.PROGRESS) == 12


def test_log_merges_session_and_task_lines_in_time_order(ran: Ran) -> None:
    detail = read_session(ran.store, ran.session.id)
    lines = log_lines(detail.session, detail.tasks)
    assert len(lines) == len(detail.session.log) + sum(len(t.log) for t in detail.tasks)
    assert [line.entry.time for line in lines] == sorted(line.entry.time for line in lines)
    model = LogModel()
    model.set_rows(lines)
    vms = {text(model, r, LogModel.VM) for r in range(model.rowCount())}
    assert set(JOB_VMS) <= vms and "" in vms  # the session's own lines have no VM
    assert any("snapshot" in text(model, r, LogModel.MESSAGE) for r in range(model.rowCount()))


def test_replicas_and_restore_points(ran: Ran) -> None:
    rows = read_home(ran.store).replicas
    model = ReplicasModel()
    model.set_rows(rows)
    assert model.rowCount() == len(JOB_VMS)
    for r in range(model.rowCount()):
        assert text(model, r, ReplicasModel.STATE) == "Ready"
        assert text(model, r, ReplicasModel.POINTS) == "1"
        vm_name = text(model, r, ReplicasModel.VM)
        assert text(model, r, ReplicasModel.REPLICA) == f"{vm_name}_replica"
        assert text(model, r, ReplicasModel.TARGET_HOST).endswith(".dr.lab")
    ready = RecordFilterProxy(model, lambda r: not r.active)
    active = RecordFilterProxy(model, lambda r: r.active)
    assert ready.rowCount() == len(JOB_VMS) and active.rowCount() == 0
    failed_over = dataclasses.replace(
        rows[0], replica=dataclasses.replace(rows[0].replica, state=ReplicaState.FAILOVER)
    )
    model.set_rows([failed_over, *rows[1:]])
    assert active.rowCount() == 1 and ready.rowCount() == len(JOB_VMS) - 1
    points = RestorePointsModel()
    points.set_rows(rows[0].points)
    point = rows[0].points[0]
    assert text(points, 0, RestorePointsModel.NUMBER) == "1"
    assert text(points, 0, RestorePointsModel.SESSION) == str(ran.session.id)
    assert text(points, 0, RestorePointsModel.CBT) in {"Used", "Not used"}
    assert points.index(0, RestorePointsModel.CAPACITY).data(Role.SORT) == sum(
        d.capacity_bytes for d in point.disks
    )


def test_infrastructure_models(ran: Ran) -> None:
    home = read_home(ran.store)
    servers = ServersModel()
    servers.set_rows(home.servers)
    assert {text(servers, r, ServersModel.KIND) for r in range(2)} == {"vCenter Server"}
    assert {text(servers, r, ServersModel.PROTOCOL) for r in range(2)} == {"HTTP"}
    assert {text(servers, r, ServersModel.CERTIFICATE) for r in range(2)} == {"HTTP"}
    servers.set_rows([dataclasses.replace(s, protocol=Protocol.HTTPS) for s in home.servers[:1]])
    assert text(servers, 0, ServersModel.CERTIFICATE) == "Not pinned"
    servers.set_rows(
        [
            dataclasses.replace(s, protocol=Protocol.HTTPS, thumbprint="ab" * 32)
            for s in home.servers[:1]
        ]
    )
    assert text(servers, 0, ServersModel.CERTIFICATE) == "Pinned"
    proxies = ProxiesModel()
    proxies.set_rows(home.proxies)
    assert sorted(text(proxies, r, ProxiesModel.SITE) for r in range(2)) == ["dr", "production"]
    assert text(proxies, 0, ProxiesModel.TLS) == "Certificate"
    repos = RepositoriesModel()
    repos.set_rows(home.repositories)
    assert text(repos, 0, RepositoriesModel.PROXY) == "this server"


def test_inventory_tree_both_ways_and_drag_payload(ran: Ran) -> None:
    prod, dr = inventories(ran.lab)
    model = InventoryModel()
    model.set_inventory(ran.lab.production.address, prod)
    model.set_inventory(ran.lab.dr.address, dr)
    assert model.rowCount() == 2
    vm = prod.vms_named("db #2 & replica")[0]
    index = model.find(vm.moref, ran.lab.production.address)
    assert index.isValid() and index.data() == "db #2 & replica"
    host = index.parent()
    assert host.data(InventoryModel.KIND_ROLE) == NodeKind.HOST
    assert host.data(InventoryModel.MOREF_ROLE) == vm.host
    assert model.flags(index) & Qt.ItemFlag.ItemIsDragEnabled
    assert model.index(index.row(), InventoryModel.STATE, host).data() == "Powered on"
    server = model.index(0, 0)
    total = sum(len(i.vms) for i in (prod, dr))
    assert sum(int(model.index(r, InventoryModel.VMS).data()) for r in range(2)) == total

    model.set_mode(TreeMode.VMS)
    index = model.find(vm.moref)
    assert index.parent().data(InventoryModel.KIND_ROLE) == NodeKind.FOLDER
    folder = index.parent()
    mime = model.mimeData([index, folder, model.index(index.row(), 1, folder)])
    dropped = objects_from_mime(mime)
    assert [(d.ref.kind, d.ref.moref, d.ref.name) for d in dropped] == [
        ("vm", vm.moref, "db #2 & replica"),
        ("folder", folder.data(InventoryModel.MOREF_ROLE), folder.data()),
    ]
    assert {d.server for d in dropped} == {ran.lab.production.address}
    assert not model.flags(server) & Qt.ItemFlag.ItemIsDragEnabled


def test_jobs_model_takes_inventory_drops_onto_a_job_or_empty_space(ran: Ran) -> None:
    """Through the sorting proxy, as the Jobs view drops: the job's name from the row dropped
    onto, "" for empty space; other MIME types never; an unreadable payload refused in words."""
    model = JobsModel()
    model.set_rows(read_home(ran.store).jobs)
    proxy = RecordFilterProxy(model)
    proxy.sort(JobsModel.NAME, Qt.SortOrder.DescendingOrder)
    dropped, refused = Relay(model.objectsDropped), Relay(model.dropRefused)
    prod, _dr = inventories(ran.lab)
    tree = InventoryModel()
    tree.set_inventory(ran.lab.production.address, prod)
    vm = prod.vms_named("app+cache")[0]
    mime = tree.mimeData([tree.find(vm.moref)])
    copy = Qt.DropAction.CopyAction
    foreign = QMimeData()
    foreign.setText("app+cache")
    for row in range(proxy.rowCount()):
        index = proxy.index(row, JobsModel.OBJECTS)
        assert proxy.flags(index) & Qt.ItemFlag.ItemIsDropEnabled
        assert proxy.canDropMimeData(mime, copy, -1, -1, index)
        assert not proxy.canDropMimeData(foreign, copy, -1, -1, index)
        assert proxy.dropMimeData(mime, copy, -1, -1, index)
        objects, job = dropped.args
        assert isinstance(objects, list)
        assert job == proxy.index(row, JobsModel.NAME).data()
        assert [(o.server, o.ref.moref) for o in objects] == [
            (ran.lab.production.address, vm.moref)
        ]
    assert dropped.count == 2 and {IDLE_JOB, JOB} == {proxy.record(r).name for r in range(2)}
    assert proxy.dropMimeData(mime, copy, -1, -1, QModelIndex())
    assert dropped.args[1] == ""
    bad = QMimeData()
    bad.setData(MIME_OBJECTS, b"[{")
    assert not proxy.dropMimeData(bad, copy, -1, -1, QModelIndex())
    assert dropped.count == 3 and "unreadable" in str(refused.args[0])


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        json.dumps({"server": "x"}).encode(),
        json.dumps([{"server": "x", "kind": "datastore", "moref": "ds-1", "name": "d"}]).encode(),
        json.dumps([{"server": "x", "kind": "vm", "moref": "vm 1; rm", "name": "d"}]).encode(),
    ],
)
def test_a_foreign_drop_is_refused(payload: bytes) -> None:
    mime = QMimeData()
    mime.setData(MIME_OBJECTS, payload)
    with pytest.raises(InvalidSettingError):
        objects_from_mime(mime)


def test_inventory_server_error_is_shown_as_a_node(ran: Ran) -> None:
    model = InventoryModel()
    model.set_error("vc.example", "cannot log in: refused")
    assert model.rowCount() == 1
    assert model.index(0, InventoryModel.STATE).data() == "cannot log in: refused"
    model.set_servers([])
    assert model.rowCount() == 0


def test_last_24_hours_predicate(ran: Ran) -> None:
    model = SessionsModel()
    model.set_rows(read_home(ran.store).sessions)
    old = dataclasses.replace(
        ran.session,
        id=10_000,
        started=ran.session.started - dt.timedelta(days=2),
        ended=ran.session.ended and ran.session.ended - dt.timedelta(days=2),
    )
    model.set_rows([*read_home(ran.store).sessions, old])
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
    proxy = RecordFilterProxy(model, lambda s: s.started >= cutoff)
    assert [s.id for s in proxy.records()] == [ran.session.id]


def test_a_model_and_its_proxy_let_go_do_not_crash_the_collector() -> None:
    """PySide6 6.12 crashed in the garbage collector after a model and a proxy parented to it
    were let go (the tables of a closed window): in a child process, since the failure is a
    segmentation fault."""
    code = (
        "import gc, os; os.environ['QT_QPA_PLATFORM'] = 'offscreen';"
        "from gui.app import create_app; app = create_app(['t']);"
        "from gui.models.jobs import JobsModel; from gui.models.filters import RecordFilterProxy\n"
        "def tables():\n"
        "    model = JobsModel(); proxy = RecordFilterProxy(model)\n"
        "for _ in range(3):\n"
        "    tables(); gc.collect()\n"
        "print('collected')"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "collected" in proc.stdout, proc.stderr[-2000:]

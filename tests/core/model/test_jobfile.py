"""Job files: the example job read in YAML and JSON, written back (round trip), and refused
inputs with the key path and the problem in the message."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import JobFileError
from core.model.destination import DiskType
from core.model.infra import TRANSPORT_ORDER, BackupProxy, TransportMode
from core.model.job import BlockSize, Compression, QuiesceFailure
from core.model.jobfile import (
    dump_job,
    job_from_document,
    job_to_document,
    load_job,
    parse_job,
    save_job,
)
from core.model.objects import ObjectKind
from core.model.schedule import ALL_HOURS, Daily

EXAMPLE = Path(__file__).with_name("example_job.yaml")


def example_document() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())  # type: ignore[no-any-return]


def test_the_example_job_reads_into_the_model() -> None:
    job = load_job(EXAMPLE)
    assert job.name == "SQL tier #1 (prod)"
    assert [o.kind for o in job.source.objects] == [ObjectKind.VM, ObjectKind.FOLDER, ObjectKind.VM]
    assert job.source.objects[2].name == "Brännström 100%"
    assert job.source.is_excluded("vm-55") and not job.source.is_excluded("vm-101")
    assert job.source.excluded_disks("vm-101") == {2002, 2003}
    assert job.source.excluded_disks("vm-9", parents=["group-v22"]) == frozenset()
    assert job.destination.for_vm("vm-7").datastore.moref == "datastore-12"
    assert job.destination.for_vm("vm-7").disk_type is DiskType.THICK
    assert job.destination.for_vm("vm-7").folder == job.destination.placement.folder
    assert job.destination.for_vm("vm-101").disk_type is DiskType.THIN
    assert job.network.target_for("VM Network", ["VM Network", "DR VM Network"]) == "DR VM Network"
    assert job.network.target_for("Backup", ["Backup"]) == "Backup"  # same-name rule
    assert job.network.target_for("Storage", ["Backup"]) is None  # NIC to be disconnected
    assert len(job.reip) == 3 and job.reip[2].version == 6
    assert job.settings.block_size is BlockSize.LAN and job.settings.block_size.bytes == 512 << 10
    assert job.settings.compression is Compression.AUTO
    assert job.settings.compression.enabled(offsite=True)
    assert not job.settings.compression.enabled(offsite=False)
    assert job.replica_name("SQL [primary] & co") == "SQL [primary] & co_dr"
    assert job.transfer.source_proxies.proxies == ("proxy-prod-1", "proxy-prod-2")
    assert job.transfer.target_proxies.automatic
    assert job.settings.quiesce
    assert job.settings.quiesce_failure is QuiesceFailure.CONTINUE
    mapped = job.seeding.replica_for("vm-7")
    assert mapped is not None and mapped.moref == "vm-2041"
    assert job.seeding.replica_for("vm-101") is None
    all_modes = BackupProxy("p", "h", "prod")
    network_only = BackupProxy("q", "h", "prod", transport_modes=(TransportMode.NETWORK,))
    assert job.transfer.modes_for(all_modes) == (TransportMode.HOTADD, TransportMode.NETWORK)
    assert job.transfer.modes_for(network_only) == (TransportMode.NETWORK,)
    trigger = job.schedule.trigger
    assert isinstance(trigger, Daily) and trigger.at == (dt.time(22), dt.time(4, 30))
    assert trigger.days == frozenset(range(5))
    assert job.schedule.window is not None
    assert job.schedule.window.hours[5] == ALL_HOURS
    assert job.schedule.window.hours[0] == frozenset([*range(7), *range(20, 24)])


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip(fmt: str, tmp_path: Path) -> None:
    job = load_job(EXAMPLE)
    text = dump_job(job, fmt)
    assert parse_job(text, fmt) == job
    path = tmp_path / f"job.{'yml' if fmt == 'yaml' else fmt}"
    save_job(job, path)
    assert load_job(path) == job
    assert job_to_document(load_job(path)) == job_to_document(job)


def test_defaults_fill_a_minimal_job_and_survive_a_round_trip() -> None:
    minimal = {
        "name": "Minimal",
        "source": {"server": "vc1", "objects": [{"kind": "vm", "moref": "vm-1", "name": "a"}]},
        "destination": {
            "server": "esx-dr-1.example",
            "target": {"kind": "host", "moref": "ha-host", "name": "esx-dr-1"},
            "datastore": {"kind": "datastore", "moref": "datastore-1", "name": "ds1"},
        },
        "settings": {"repository": "meta"},
    }
    job = job_from_document(minimal)
    assert job.settings.replica_suffix == "_replica" and job.settings.restore_points == 7
    assert job.settings.block_size is BlockSize.LOCAL and job.settings.use_cbt
    assert job.schedule.trigger is None and job.schedule.retry.times == 3
    assert job.network.same_name and not job.network.mappings and job.reip == ()
    assert not job.settings.quiesce and job.transfer.transport_modes == ()
    # A job stored before guest processing and seeding existed: fail when quiescing fails (what
    # a quiesced snapshot did then), no mappings.
    assert job.settings.quiesce_failure is QuiesceFailure.FAIL and not job.seeding.mappings
    assert job.transfer.modes_for(BackupProxy("p", "h", "s")) == TRANSPORT_ORDER
    assert job_from_document(json.loads(json.dumps(job_to_document(job)))) == job


def test_yaml_times_are_not_sexagesimal_numbers() -> None:
    # PyYAML's YAML 1.1 reads 22:00 as the integer 1320; job files are read as text times.
    text = dump_job(load_job(EXAMPLE)).replace("- '22:00'", "- 22:00")
    assert "- 22:00" in text
    trigger = parse_job(text).schedule.trigger
    assert isinstance(trigger, Daily) and dt.time(22) in trigger.at


def change(path: str, value: object) -> dict[str, Any]:
    """The example document with the value at a dotted path (list indexes as numbers) replaced;
    the value DELETE removes the key."""
    doc = copy.deepcopy(example_document())
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return doc


DELETE = object()
_MAPPED = {
    "vm": {"kind": "vm", "moref": "vm-7", "name": "sql-01"},
    "replica": {"kind": "vm", "moref": "vm-2041", "name": "sql-01 (restored)"},
}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "schedule.daily.at",
            ["22:00", "25:00"],
            'schedule.daily.at[1]: "25:00" is not a time (HH:MM, 00:00 to 23:59)',
        ),
        (
            "schedule.dialy",
            {"at": ["01:00"]},
            "schedule.dialy: unknown key (expected one of: after, daily, enabled, periodic, "
            "retry, window)",
        ),
        (
            "colour",
            "blue",
            "colour: unknown key (expected one of: description, destination, name, network, "
            "reip, schedule, seeding, settings, source, transfer)",
        ),
        (
            "settings.quiesce_failure",
            "ignore",
            'settings.quiesce_failure: "ignore" is not one of: fail, continue',
        ),
        (
            "seeding.mappings.0.replica.kind",
            "folder",
            'seeding.mappings[0].replica.kind: "folder" is not one of: vm',
        ),
        (
            "seeding.mappings",
            [
                _MAPPED,
                {"vm": _MAPPED["vm"], "replica": {"kind": "vm", "moref": "vm-9", "name": "x"}},
            ],
            'seeding.mappings[1]: source VM "vm-7" is listed twice',
        ),
        (
            "seeding.mappings",
            [
                _MAPPED,
                {
                    "vm": {"kind": "vm", "moref": "vm-101", "name": "a"},
                    "replica": _MAPPED["replica"],
                },
            ],
            'seeding.mappings[1].replica: "sql-01 (restored)" is already the replica of "sql-01"',
        ),
        ("seeding.mappings.0.vm", DELETE, "seeding.mappings[0].vm: is required"),
        ("name", DELETE, "name: is required"),
        ("name", " padded", 'name: " padded" starts or ends with spaces'),
        ("settings.restore_points", 29, "settings.restore_points: 29 is out of range (1 to 28)"),
        ("settings.restore_points", "7", 'settings.restore_points: "7" is not a whole number'),
        ("settings.block_size", "4M", 'settings.block_size: "4M" is not one of: local, lan, wan'),
        ("settings.use_cbt", "yes", 'settings.use_cbt: "yes" is not true or false'),
        (
            "settings.use_cbt",
            False,
            "settings.enable_cbt: needs use_cbt: CBT would be enabled for nothing",
        ),
        ("settings.replica_suffix", "_r/1", 'settings.replica_suffix: "_r/1" contains /'),
        ("source.objects", [], "source.objects: add at least one VM or container"),
        (
            "source.objects.1.kind",
            "tag",
            'source.objects[1].kind: "tag" is not one of: vm, folder, host, cluster, datacenter, '
            "resource_pool, datastore",
        ),
        (
            "source.objects.1.kind",
            "datastore",
            'source.objects[1].kind: "datastore" is not one of: cluster, datacenter, folder, '
            "host, vm",
        ),
        (
            "source.objects.0.moref",
            "vm 101",
            'source.objects[0].moref: "vm 101" is not a vSphere managed object ID (such as '
            '"vm-42")',
        ),
        (
            "source.objects.2",
            {"kind": "vm", "moref": "vm-101", "name": "again"},
            'source.objects[2]: object "vm-101" is listed twice',
        ),
        (
            "source.exclude_vms.0.moref",
            "vm-7",
            'source.exclude_vms[0]: VM "SQL test + scratch" (vm-7) is both added and excluded',
        ),
        (
            "source.exclude_disks.0.disk_keys",
            [2002, 2002],
            "source.exclude_disks[0].disk_keys[1]: disk key 2002 is listed twice",
        ),
        (
            "source.exclude_disks.0.disk_keys",
            [],
            "source.exclude_disks[0].disk_keys: list at least one disk device key",
        ),
        (
            "source.server",
            "vc prod",
            'source.server: "vc prod" is not a host name or an IP address',
        ),
        (
            "destination.target.kind",
            "folder",
            'destination.target.kind: "folder" is not one of: cluster, host',
        ),
        (
            "destination.overrides.0",
            {"vm": {"kind": "vm", "moref": "vm-7", "name": "x"}},
            "destination.overrides[0]: an override must change at least one setting",
        ),
        (
            "destination.disk_type",
            "eager",
            'destination.disk_type: "eager" is not one of: same, thin, thick',
        ),
        (
            "network.mappings.1.source",
            "VM Network",
            'network.mappings[1]: source network "VM Network" is listed twice',
        ),
        (
            "network.mappings",
            {"VM Network": "DR"},
            "network.mappings: expected a list, found a mapping",
        ),
        (
            "reip.0.gateway",
            "10.9.2.1",
            'reip[0].gateway: "10.9.2.1" is outside the target subnet (10.9.1.* /24)',
        ),
        (
            "reip.1.source",
            "172.17.1.*",
            "reip[1]: never applies: rule [0] (172.17.1.*) comes first and matches every address "
            "172.17.1.* matches",
        ),
        (
            "transfer.source_proxies",
            [],
            'transfer.source_proxies: an empty list: write "automatic" or name proxies',
        ),
        (
            "transfer.target_proxies",
            "auto",
            'transfer.target_proxies: "auto" is not "automatic" or a list of proxies',
        ),
        (
            "transfer.transport_modes",
            ["network", "san"],
            'transfer.transport_modes[1]: "san" is not one of: direct, hotadd, network',
        ),
        (
            "transfer.transport_modes",
            ["network", "network"],
            'transfer.transport_modes[1]: transport mode "network" is listed twice',
        ),
        (
            "transfer.transport_modes",
            [],
            'transfer.transport_modes: an empty list: write "automatic" or name modes',
        ),
        ("settings.quiesce", 1, "settings.quiesce: 1 is not true or false"),
        ("schedule.periodic", {"every": 4}, "schedule: give only one of daily, periodic and after"),
        (
            "schedule.daily.days",
            ["mon", "funday"],
            'schedule.daily.days[1]: "funday" is not a weekday (mon, tue, wed, thu, fri, sat, sun)',
        ),
        ("schedule.retry.times", 100, "schedule.retry.times: 100 is out of range (0 to 99)"),
        (
            "schedule.window.all",
            ["07:00-06:00"],
            'schedule.window.all[0]: "07:00-06:00" is not a range of whole hours ("08:00-18:00")',
        ),
        (
            "schedule.window.all",
            ["08:30-09:00"],
            'schedule.window.all[0]: "08:30-09:00" is not a range of whole hours ("08:00-18:00")',
        ),
        (
            "schedule.window.sat",
            "some",
            'schedule.window.sat: "some" is not "all", "none" or a list of hours',
        ),
        (
            "schedule.after",
            "SQL tier #1 (prod)",
            "schedule: give only one of daily, periodic and after",
        ),
    ],
)
def test_bad_values_are_refused_with_the_key_path(path: str, value: object, message: str) -> None:
    with pytest.raises(JobFileError) as err:
        parse_job(json.dumps(change(path, value)), "json", "job.json")
    assert str(err.value) == f"Job file job.json: {message}"


def test_a_job_cannot_run_after_itself() -> None:
    doc = change("schedule.daily", DELETE)
    doc["schedule"]["after"] = doc["name"]
    doc["schedule"].pop("window")
    with pytest.raises(JobFileError) as err:
        parse_job(json.dumps(doc), "json", "j.json")
    assert str(err.value) == "Job file j.json: schedule.after: a job cannot run after itself"


def test_syntax_errors_duplicate_keys_and_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(JobFileError) as err:
        parse_job("name: a\nname: b\n", "yaml", "j.yaml")
    assert (
        str(err.value)
        == "Job file j.yaml: not valid YAML: line 2 column 1: the key 'name' appears twice"
    )
    with pytest.raises(JobFileError) as err:
        parse_job('{"name": "a", "name": "b"}', "json", "j.json")
    assert str(err.value) == "Job file j.json: not valid JSON: the key 'name' appears twice"
    with pytest.raises(JobFileError) as err:
        parse_job('{"name": ', "json", "j.json")
    assert str(err.value).startswith("Job file j.json: not valid JSON: line 1 column 10:")
    with pytest.raises(JobFileError) as err:
        parse_job("- a\n- b\n", "yaml", "j.yaml")
    assert str(err.value) == "Job file j.yaml: (top): expected a mapping, found a list"
    wrong = tmp_path / "job.txt"
    wrong.write_text("name: x")
    with pytest.raises(JobFileError) as err:
        load_job(wrong)
    assert (
        str(err.value) == f"Job file {wrong}: name it .yaml, .yml or .json so its format is known"
    )
    with pytest.raises(JobFileError, match="cannot be read"):
        load_job(tmp_path / "missing.yaml")


def test_the_strict_loader_does_not_change_pyyaml_for_others() -> None:
    assert yaml.safe_load("a: no\nb: 22:00") == {"a": False, "b": 1320}

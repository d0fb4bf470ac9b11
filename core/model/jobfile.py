"""Job files: a ReplicationJob read from and written to YAML or JSON.

The file mirrors the wizard (see `example_job_document` in the tests for a full one):

    name, description
    source:       server, objects[], exclude_vms[], exclude_disks[]{object, disk_keys}
    destination:  server, target, resource_pool, folder, datastore, disk_type, overrides[]
    network:      same_name, mappings[]{source, target}
    reip[]:       source, source_mask, target, target_mask, gateway, dns[], wins[], description
    settings:     repository, replica_suffix, restore_points, block_size, compression,
                  use_cbt, enable_cbt, quiesce, rpo_minutes, quiesce_failure (fail, continue)
    transfer:     source_proxies, target_proxies ("automatic" or a list of proxy names),
                  transport_modes ("automatic" or a list of direct, hotadd, network)
    seeding:      mappings[]{vm, replica}: a source VM and the existing DR VM it adopts
    schedule:     enabled, one of daily{at[], days[]} / periodic{every, unit, offset_minutes} /
                  after (a job name), retry{times, wait_minutes}, window{mon..sun, all}

vSphere objects are `{kind, moref, name}`. Everything read from a file is untrusted until the
dataclasses accept it: unknown keys are refused, and every error names its key path
(`schedule.daily.at[1]: "25:00" is not a time`). `job_to_document` writes the same structure
back, and reading it gives an equal job; the store keeps jobs in this form too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.errors import InvalidSettingError, JobFileError
from core.model import fields
from core.model.destination import Destination, DiskType, Placement, VmOverride
from core.model.docload import dump_document, load_document
from core.model.infra import TransportMode
from core.model.job import (
    BlockSize,
    Compression,
    DataTransfer,
    JobSettings,
    ProxySelection,
    QuiesceFailure,
    ReplicationJob,
)
from core.model.network import NetworkMap, NetworkMapping
from core.model.objects import DiskExclusion, ObjectKind, ObjectRef, SourceSelection
from core.model.reip import ReIpRule
from core.model.schedule import (
    ALL_DAYS,
    ALL_HOURS,
    WEEKDAYS,
    AfterJob,
    BackupWindow,
    Daily,
    IntervalUnit,
    JobSchedule,
    Periodic,
    RetryPolicy,
    Trigger,
)
from core.model.seeding import ReplicaMapping, Seeding

T = TypeVar("T")
D = TypeVar("D")
_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_HOUR_RANGE = re.compile(r"^([01]?[0-9]|2[0-4]):00-([01]?[0-9]|2[0-4]):00$")
AUTOMATIC = "automatic"
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


@contextmanager
def _under(path: str) -> Iterator[None]:
    """Place a dataclass's field errors under the key path of the object being read."""
    try:
        yield
    except InvalidSettingError as e:
        raise e.under(path) from None


class _Map:
    """A mapping read from the file: keys are taken one by one, leftovers are refused."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, dict):
            raise InvalidSettingError(path or "(top)", f"expected a mapping, found {_kind(raw)}")
        self.raw: dict[object, object] = raw
        self.path = path
        self.taken: set[str] = set()

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, conv: Callable[[object, str], T], default: D) -> T | D:
        self.taken.add(key)
        if key not in self.raw or self.raw[key] is None:
            return default
        return conv(self.raw[key], self.at(key))

    def need(self, key: str, conv: Callable[[object, str], T]) -> T:
        self.taken.add(key)
        if key not in self.raw or self.raw[key] is None:
            raise InvalidSettingError(self.at(key), "is required")
        return conv(self.raw[key], self.at(key))

    def done(self) -> None:
        for key in self.raw:
            if key not in self.taken:
                expected = ", ".join(sorted(self.taken))
                raise InvalidSettingError(
                    self.at(str(key)), f"unknown key (expected one of: {expected})"
                )


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return fields.show(value)


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidSettingError(path, f"{_kind(value)} is not a text")
    return value


def _int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettingError(path, f"{_kind(value)} is not a whole number")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSettingError(path, f"{_kind(value)} is not true or false")
    return value


def _list(item: Callable[[object, str], T]) -> Callable[[object, str], tuple[T, ...]]:
    def read(value: object, path: str) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise InvalidSettingError(path, f"expected a list, found {_kind(value)}")
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return read


def _enum(enum: Any) -> Callable[[object, str], Any]:
    def read(value: object, path: str) -> Any:
        with _under(path):
            return fields.choice("", value, enum)

    return read


# --- reading ------------------------------------------------------------------------------


def _ref(value: object, path: str) -> ObjectRef:
    m = _Map(value, path)
    kind = m.need("kind", _enum(ObjectKind))
    moref = m.need("moref", _str)
    name = m.need("name", _str)
    m.done()
    with _under(path):
        return ObjectRef(kind, moref, name)


def _disk_exclusion(value: object, path: str) -> DiskExclusion:
    m = _Map(value, path)
    obj = m.need("object", _ref)
    keys = m.need("disk_keys", _list(_int))
    m.done()
    with _under(path):
        return DiskExclusion(obj, keys)


def _source(value: object, path: str) -> SourceSelection:
    m = _Map(value, path)
    server = m.need("server", _str)
    objects = m.need("objects", _list(_ref))
    exclude_vms = m.get("exclude_vms", _list(_ref), ())
    exclude_disks = m.get("exclude_disks", _list(_disk_exclusion), ())
    m.done()
    with _under(path):
        return SourceSelection(server, objects, exclude_vms, exclude_disks)


def _override(value: object, path: str) -> VmOverride:
    m = _Map(value, path)
    vm = m.need("vm", _ref)
    datastore = m.get("datastore", _ref, None)
    pool = m.get("resource_pool", _ref, None)
    folder = m.get("folder", _ref, None)
    disk_type = m.get("disk_type", _enum(DiskType), None)
    m.done()
    with _under(path):
        return VmOverride(vm, datastore, pool, folder, disk_type)


def _destination(value: object, path: str) -> Destination:
    m = _Map(value, path)
    server = m.need("server", _str)
    target = m.need("target", _ref)
    datastore = m.need("datastore", _ref)
    pool = m.get("resource_pool", _ref, None)
    folder = m.get("folder", _ref, None)
    disk_type = m.get("disk_type", _enum(DiskType), DiskType.SAME)
    overrides = m.get("overrides", _list(_override), ())
    m.done()
    with _under(path):
        placement = Placement(target, datastore, pool, folder, disk_type)
        return Destination(server, placement, overrides)


def _mapping(value: object, path: str) -> NetworkMapping:
    m = _Map(value, path)
    source = m.need("source", _str)
    target = m.need("target", _str)
    m.done()
    with _under(path):
        return NetworkMapping(source, target)


def _network(value: object, path: str) -> NetworkMap:
    m = _Map(value, path)
    same_name = m.get("same_name", _bool, True)
    rows = m.get("mappings", _list(_mapping), ())
    m.done()
    with _under(path):
        return NetworkMap(rows, same_name)


def _rule(value: object, path: str) -> ReIpRule:
    m = _Map(value, path)
    source = m.need("source", _str)
    source_mask = m.get("source_mask", _str, None)
    target = m.need("target", _str)
    target_mask = m.get("target_mask", _str, None)
    gateway = m.get("gateway", _str, None)
    dns = m.get("dns", _list(_str), ())
    wins = m.get("wins", _list(_str), ())
    description = m.get("description", _str, "")
    m.done()
    with _under(path):
        return ReIpRule(source, target, source_mask, target_mask, gateway, dns, wins, description)


def _settings(value: object, path: str) -> JobSettings:
    m = _Map(value, path)
    defaults = JobSettings(repository="-")
    repository = m.need("repository", _str)
    suffix = m.get("replica_suffix", _str, defaults.replica_suffix)
    points = m.get("restore_points", _int, defaults.restore_points)
    block = m.get("block_size", _enum(BlockSize), defaults.block_size)
    compression = m.get("compression", _enum(Compression), defaults.compression)
    use_cbt = m.get("use_cbt", _bool, defaults.use_cbt)
    enable_cbt = m.get("enable_cbt", _bool, defaults.enable_cbt)
    quiesce = m.get("quiesce", _bool, defaults.quiesce)
    rpo = m.get("rpo_minutes", _int, defaults.rpo_minutes)
    on_failure = m.get("quiesce_failure", _enum(QuiesceFailure), defaults.quiesce_failure)
    m.done()
    with _under(path):
        return JobSettings(
            repository,
            suffix,
            points,
            block,
            compression,
            use_cbt,
            enable_cbt,
            quiesce,
            rpo,
            on_failure,
        )


def _replica_mapping(value: object, path: str) -> ReplicaMapping:
    m = _Map(value, path)
    vm = m.need("vm", _ref)
    replica = m.need("replica", _ref)
    m.done()
    with _under(path):
        return ReplicaMapping(vm, replica)


def _seeding(value: object, path: str) -> Seeding:
    m = _Map(value, path)
    mappings = m.get("mappings", _list(_replica_mapping), ())
    m.done()
    with _under(path):
        return Seeding(mappings)


def _proxies(value: object, path: str) -> ProxySelection:
    if value == AUTOMATIC:
        return ProxySelection()
    if isinstance(value, list):
        if not value:
            raise InvalidSettingError(path, f'an empty list: write "{AUTOMATIC}" or name proxies')
        names = _list(_str)(value, path)
        with _under(path):
            return ProxySelection(names)
    raise InvalidSettingError(path, f'{_kind(value)} is not "{AUTOMATIC}" or a list of proxies')


def _transfer(value: object, path: str) -> DataTransfer:
    m = _Map(value, path)
    source = m.get("source_proxies", _proxies, ProxySelection())
    target = m.get("target_proxies", _proxies, ProxySelection())
    modes = m.get("transport_modes", _modes, ())
    m.done()
    with _under(path):
        return DataTransfer(source, target, modes)


def _modes(value: object, path: str) -> tuple[TransportMode, ...]:
    if value == AUTOMATIC:
        return ()
    if isinstance(value, list):
        if not value:
            raise InvalidSettingError(path, f'an empty list: write "{AUTOMATIC}" or name modes')
        return _list(_enum(TransportMode))(value, path)
    raise InvalidSettingError(
        path, f'{_kind(value)} is not "{AUTOMATIC}" or a list of direct, hotadd, network'
    )


def _time(value: object, path: str) -> dt.time:
    match = _TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidSettingError(path, f"{_kind(value)} is not a time (HH:MM, 00:00 to 23:59)")
    return dt.time(int(match[1]), int(match[2]))


def _weekday(value: object, path: str) -> int:
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if isinstance(value, str):
        key = value.lower()
        for index, names in enumerate(zip(WEEKDAYS, full, strict=True)):
            if key in names:
                return index
    raise InvalidSettingError(path, f"{_kind(value)} is not a weekday ({', '.join(WEEKDAYS)})")


def _daily(value: object, path: str) -> Daily:
    m = _Map(value, path)
    at = m.need("at", _list(_time))
    days = m.get("days", _list(_weekday), tuple(sorted(ALL_DAYS)))
    m.done()
    with _under(path):
        fields.unique("days", days, "day")
        return Daily(at, frozenset(days))


def _periodic(value: object, path: str) -> Periodic:
    m = _Map(value, path)
    every = m.need("every", _int)
    unit = m.get("unit", _enum(IntervalUnit), IntervalUnit.HOURS)
    offset = m.get("offset_minutes", _int, 0)
    m.done()
    with _under(path):
        return Periodic(every, unit, offset)


def _after(value: object, path: str) -> AfterJob:
    name = _str(value, path)
    with _under(path):
        return AfterJob(name)


def _retry(value: object, path: str) -> RetryPolicy:
    m = _Map(value, path)
    times = m.get("times", _int, RetryPolicy().times)
    wait = m.get("wait_minutes", _int, RetryPolicy().wait_minutes)
    m.done()
    with _under(path):
        return RetryPolicy(times, wait)


def _hours(value: object, path: str) -> frozenset[int]:
    if value == "all":
        return ALL_HOURS
    if value == "none":
        return frozenset()
    ranges = _list(_str)(value, path) if isinstance(value, list) else None
    if ranges is None:
        raise InvalidSettingError(path, f'{_kind(value)} is not "all", "none" or a list of hours')
    hours: set[int] = set()
    for i, text in enumerate(ranges):
        match = _HOUR_RANGE.match(text)
        if not match or int(match[1]) >= int(match[2]):
            raise InvalidSettingError(
                f"{path}[{i}]", f'{fields.show(text)} is not a range of whole hours ("08:00-18:00")'
            )
        hours.update(range(int(match[1]), int(match[2])))
    return frozenset(hours)


def _window(value: object, path: str) -> BackupWindow:
    m = _Map(value, path)
    default: frozenset[int] = m.get("all", _hours, frozenset())
    per_day = tuple(m.get(day, _hours, default) for day in WEEKDAYS)
    m.done()
    with _under(path):
        return BackupWindow(per_day)


def _schedule(value: object, path: str) -> JobSchedule:
    m = _Map(value, path)
    enabled = m.get("enabled", _bool, True)
    given: list[Trigger | None] = [
        m.get("daily", _daily, None),
        m.get("periodic", _periodic, None),
        m.get("after", _after, None),
    ]
    triggers = [t for t in given if t is not None]
    if len(triggers) > 1:
        raise InvalidSettingError(path, "give only one of daily, periodic and after")
    retry = m.get("retry", _retry, RetryPolicy())
    window = m.get("window", _window, None)
    m.done()
    with _under(path):
        return JobSchedule(triggers[0] if triggers else None, retry, window, enabled)


def job_from_document(untrusted: object) -> ReplicationJob:
    """Build a job from a parsed document; raises InvalidSettingError naming the key path."""
    m = _Map(untrusted, "")
    name = m.need("name", _str)
    description = m.get("description", _str, "")
    source = m.need("source", _source)
    destination = m.need("destination", _destination)
    network = m.get("network", _network, NetworkMap())
    reip = m.get("reip", _list(_rule), ())
    settings = m.need("settings", _settings)
    transfer = m.get("transfer", _transfer, DataTransfer())
    schedule = m.get("schedule", _schedule, JobSchedule())
    seeding = m.get("seeding", _seeding, Seeding())
    m.done()
    return ReplicationJob(
        name=name,
        description=description,
        source=source,
        destination=destination,
        network=network,
        reip=reip,
        settings=settings,
        transfer=transfer,
        schedule=schedule,
        seeding=seeding,
    )


def parse_job(text: str, fmt: str = "yaml", source: str = "<text>") -> ReplicationJob:
    """Parse a job file's text; every problem is a JobFileError naming `source` and the key."""
    document = load_document(text, fmt, source)
    try:
        return job_from_document(document)
    except InvalidSettingError as e:
        raise JobFileError(source, str(e)) from None


def load_job(path: Path) -> ReplicationJob:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise JobFileError(path, "name it .yaml, .yml or .json so its format is known")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise JobFileError(path, f"cannot be read: {e}") from None
    return parse_job(text, fmt, str(path))


# --- writing ------------------------------------------------------------------------------


def _ref_doc(ref: ObjectRef) -> dict[str, str]:
    return {"kind": str(ref.kind), "moref": ref.moref, "name": ref.name}


def _opt(doc: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        doc[key] = _ref_doc(value) if isinstance(value, ObjectRef) else value


def _hours_doc(hours: frozenset[int]) -> str | list[str]:
    if hours == ALL_HOURS:
        return "all"
    if not hours:
        return "none"
    ranges: list[str] = []
    ordered = sorted(hours)
    start = prev = ordered[0]
    for h in [*ordered[1:], None]:
        if h is not None and h == prev + 1:
            prev = h
            continue
        ranges.append(f"{start:02d}:00-{prev + 1:02d}:00")
        if h is not None:
            start = prev = h
    return ranges


def _schedule_doc(schedule: JobSchedule) -> dict[str, Any]:
    doc: dict[str, Any] = {"enabled": schedule.enabled}
    trigger = schedule.trigger
    if isinstance(trigger, Daily):
        daily: dict[str, Any] = {"at": [t.strftime("%H:%M") for t in trigger.at]}
        if trigger.days != ALL_DAYS:
            daily["days"] = [WEEKDAYS[d] for d in sorted(trigger.days)]
        doc["daily"] = daily
    elif isinstance(trigger, Periodic):
        doc["periodic"] = {
            "every": trigger.every,
            "unit": str(trigger.unit),
            "offset_minutes": trigger.offset_minutes,
        }
    elif isinstance(trigger, AfterJob):
        doc["after"] = trigger.job
    doc["retry"] = {"times": schedule.retry.times, "wait_minutes": schedule.retry.wait_minutes}
    if schedule.window is not None:
        doc["window"] = {
            day: _hours_doc(hours)
            for day, hours in zip(WEEKDAYS, schedule.window.hours, strict=True)
        }
    return doc


def _proxies_doc(selection: ProxySelection) -> str | list[str]:
    return AUTOMATIC if selection.automatic else list(selection.proxies)


def _rule_doc(rule: ReIpRule) -> dict[str, Any]:
    doc: dict[str, Any] = {"source": rule.source}
    _opt(doc, "source_mask", rule.source_mask)
    doc["target"] = rule.target
    _opt(doc, "target_mask", rule.target_mask)
    _opt(doc, "gateway", rule.gateway)
    if rule.dns:
        doc["dns"] = list(rule.dns)
    if rule.wins:
        doc["wins"] = list(rule.wins)
    if rule.description:
        doc["description"] = rule.description
    return doc


def job_to_document(job: ReplicationJob) -> dict[str, Any]:
    """The job as plain data (dicts, lists, text, numbers), ready for YAML or JSON."""
    src = job.source
    source: dict[str, Any] = {
        "server": src.server,
        "objects": [_ref_doc(o) for o in src.objects],
    }
    if src.exclude_vms:
        source["exclude_vms"] = [_ref_doc(o) for o in src.exclude_vms]
    if src.exclude_disks:
        source["exclude_disks"] = [
            {"object": _ref_doc(d.object), "disk_keys": list(d.disk_keys)}
            for d in src.exclude_disks
        ]
    place = job.destination.placement
    destination: dict[str, Any] = {
        "server": job.destination.server,
        "target": _ref_doc(place.target),
    }
    _opt(destination, "resource_pool", place.resource_pool)
    _opt(destination, "folder", place.folder)
    destination["datastore"] = _ref_doc(place.datastore)
    destination["disk_type"] = str(place.disk_type)
    if job.destination.overrides:
        overrides = []
        for o in job.destination.overrides:
            row: dict[str, Any] = {"vm": _ref_doc(o.vm)}
            _opt(row, "datastore", o.datastore)
            _opt(row, "resource_pool", o.resource_pool)
            _opt(row, "folder", o.folder)
            _opt(row, "disk_type", None if o.disk_type is None else str(o.disk_type))
            overrides.append(row)
        destination["overrides"] = overrides
    s = job.settings
    return {
        "name": job.name,
        "description": job.description,
        "source": source,
        "destination": destination,
        "network": {
            "same_name": job.network.same_name,
            "mappings": [{"source": r.source, "target": r.target} for r in job.network.mappings],
        },
        "reip": [_rule_doc(r) for r in job.reip],
        "settings": {
            "repository": s.repository,
            "replica_suffix": s.replica_suffix,
            "restore_points": s.restore_points,
            "block_size": str(s.block_size),
            "compression": str(s.compression),
            "use_cbt": s.use_cbt,
            "enable_cbt": s.enable_cbt,
            "quiesce": s.quiesce,
            "rpo_minutes": s.rpo_minutes,
            "quiesce_failure": str(s.quiesce_failure),
        },
        "transfer": {
            "source_proxies": _proxies_doc(job.transfer.source_proxies),
            "target_proxies": _proxies_doc(job.transfer.target_proxies),
            "transport_modes": [str(m) for m in job.transfer.transport_modes] or AUTOMATIC,
        },
        "schedule": _schedule_doc(job.schedule),
        "seeding": {
            "mappings": [
                {"vm": _ref_doc(r.vm), "replica": _ref_doc(r.replica)} for r in job.seeding.mappings
            ]
        },
    }


def dump_job(job: ReplicationJob, fmt: str = "yaml") -> str:
    return dump_document(job_to_document(job), fmt)


def save_job(job: ReplicationJob, path: Path) -> None:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise JobFileError(path, "name it .yaml, .yml or .json so its format is known")
    path.write_text(dump_job(job, fmt), encoding="utf-8")

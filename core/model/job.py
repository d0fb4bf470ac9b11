"""A replication job: every setting of the New Replication Job wizard that applies to replication.

The dataclass groups follow the wizard's steps (DOMAIN.md): source selection (Virtual machines),
destination, network, re-IP, job settings, data transfer, seeding, guest processing (`quiesce` and
`quiesce_failure`, kept in the settings for old job files), schedule. `core.model.jobfile` reads
and writes the same structure as YAML or JSON; `core.store` keeps it as a JSON document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import InvalidSettingError
from core.model import fields
from core.model.destination import Destination
from core.model.infra import TRANSPORT_ORDER, BackupProxy, TransportMode
from core.model.network import NetworkMap
from core.model.objects import SourceSelection
from core.model.reip import ReIpRule, check_rules
from core.model.schedule import AfterJob, JobSchedule
from core.model.seeding import Seeding

MAX_RESTORE_POINTS = 28  # VMware's snapshot limit per VM
DEFAULT_RPO_MINUTES = 24 * 60
MAX_RPO_MINUTES = 31 * 24 * 60
DEFAULT_SUFFIX = "_replica"
_SUFFIX_FORBIDDEN = set('/\\%*?"<>|')


class BlockSize(StrEnum):
    """The wizard's storage optimization: smaller blocks send less after small changes."""

    LOCAL = "local"  # 1 MiB
    LAN = "lan"  # 512 KiB
    WAN = "wan"  # 256 KiB

    @property
    def bytes(self) -> int:
        return {"local": 1 << 20, "lan": 512 << 10, "wan": 256 << 10}[self.value]


class Compression(StrEnum):
    """LZ4 is the engine's codec (core.blocks); `auto` is DOMAIN.md's rule: off when both data
    movers are on one site, on between sites."""

    AUTO = "auto"
    NONE = "none"
    OPTIMAL = "optimal"  # always LZ4

    def enabled(self, offsite: bool) -> bool:
        return self is Compression.OPTIMAL or (self is Compression.AUTO and offsite)


class QuiesceFailure(StrEnum):
    """Guest processing: what a run does when the guest cannot be quiesced (VMware Tools not
    running, or the quiesced snapshot fails)."""

    FAIL = "fail"  # the VM fails this run: no restore point without application consistency
    CONTINUE = "continue"  # a crash-consistent snapshot instead, and a warning


@dataclass(frozen=True)
class JobSettings:
    repository: str  # the name of the Repository holding replica metadata
    replica_suffix: str = DEFAULT_SUFFIX
    restore_points: int = 7
    block_size: BlockSize = BlockSize.LOCAL
    compression: Compression = Compression.AUTO
    use_cbt: bool = True
    enable_cbt: bool = True  # turn CBT on for VMs that have it off
    # Guest processing ("application-aware processing"): quiesce the guest file systems through
    # VMware Tools for the snapshot, and what to do when that is not possible.
    quiesce: bool = False
    # The recovery point objective: a VM whose newest restore point is older is in violation
    # (core.planning.rpo raises the alarm; the readiness report of a failover plan checks it).
    rpo_minutes: int = DEFAULT_RPO_MINUTES
    quiesce_failure: QuiesceFailure = QuiesceFailure.FAIL

    def __post_init__(self) -> None:
        fields.name("repository", self.repository)
        suffix = fields.name("replica_suffix", self.replica_suffix, max_len=40)
        bad = sorted(_SUFFIX_FORBIDDEN.intersection(suffix))
        if bad:
            raise InvalidSettingError(
                "replica_suffix", f"{fields.show(suffix)} contains {' '.join(bad)}"
            )
        fields.integer("restore_points", self.restore_points, 1, MAX_RESTORE_POINTS)
        fields.choice("block_size", self.block_size, BlockSize)
        fields.choice("compression", self.compression, Compression)
        fields.flag("use_cbt", self.use_cbt)
        fields.flag("enable_cbt", self.enable_cbt)
        fields.flag("quiesce", self.quiesce)
        fields.integer("rpo_minutes", self.rpo_minutes, 1, MAX_RPO_MINUTES)
        fields.choice("quiesce_failure", self.quiesce_failure, QuiesceFailure)
        if self.enable_cbt and not self.use_cbt:
            raise InvalidSettingError(
                "enable_cbt", "needs use_cbt: CBT would be enabled for nothing"
            )


@dataclass(frozen=True)
class ProxySelection:
    """Automatic (any proxy of the right site with a free task slot) or a chosen list."""

    proxies: tuple[str, ...] = ()  # empty: automatic

    def __post_init__(self) -> None:
        for i, proxy in enumerate(self.proxies):
            fields.name(f"proxies[{i}]", proxy)
        fields.unique("proxies", self.proxies, "proxy")

    @property
    def automatic(self) -> bool:
        return not self.proxies


@dataclass(frozen=True)
class DataTransfer:
    source_proxies: ProxySelection = ProxySelection()
    target_proxies: ProxySelection = ProxySelection()
    # Transport modes to try, in order; empty: each proxy's own modes in TRANSPORT_ORDER.
    transport_modes: tuple[TransportMode, ...] = ()

    def __post_init__(self) -> None:
        for i, mode in enumerate(self.transport_modes):
            fields.choice(f"transport_modes[{i}]", mode, TransportMode)
        fields.unique("transport_modes", self.transport_modes, "transport mode")

    def modes_for(self, proxy: BackupProxy) -> tuple[TransportMode, ...]:
        """The modes to try on `proxy`, in order: the job's choice limited to what it can do."""
        wanted = self.transport_modes or TRANSPORT_ORDER
        return tuple(m for m in wanted if m in proxy.transport_modes)


@dataclass(frozen=True)
class ReplicationJob:
    name: str
    source: SourceSelection
    destination: Destination
    settings: JobSettings
    description: str = ""
    network: NetworkMap = field(default_factory=NetworkMap)
    reip: tuple[ReIpRule, ...] = ()
    transfer: DataTransfer = field(default_factory=DataTransfer)
    schedule: JobSchedule = field(default_factory=JobSchedule)
    seeding: Seeding = field(default_factory=Seeding)

    def __post_init__(self) -> None:
        fields.name("name", self.name, max_len=128)
        fields.text("description", self.description)
        if not isinstance(self.reip, tuple):
            raise InvalidSettingError("reip", "must be a list of rules")
        try:
            check_rules(self.reip)
        except InvalidSettingError as e:
            raise e.under("reip") from None
        trigger = self.schedule.trigger
        if isinstance(trigger, AfterJob) and trigger.job == self.name:
            raise InvalidSettingError("schedule.after", "a job cannot run after itself")

    def replica_name(self, vm_name: str) -> str:
        return f"{vm_name}{self.settings.replica_suffix}"

"""The job's network mapping, applied again at failover, before the replica is powered on.

Each NIC of the replica goes to the DR network the mapping gives the source NIC's network
(core.model.network), which must still exist on the replica's host: a network deleted or renamed
at the DR site since the replica was made stops that VM's failover with a clear error, before
anything was changed. A NIC whose mapping changed since the replica was made is moved; a NIC
without a mapping stays disconnected (with a warning, as on a run). When the production vCenter
cannot be reached, the source NICs' networks are unknown: then each replica NIC's own network
must still exist. A NIC is named in messages by its place and hardware (`nic_label`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import FailoverNetworkError
from core.model.job import ReplicationJob
from core.vsphere import vms
from core.vsphere.connection import VSphereClient
from core.vsphere.models import Nic, Vm


@dataclass(frozen=True)
class NicPlan:
    nic_key: int
    label: str
    current: str  # the replica NIC's network now
    target: str | None  # where it goes; None: disconnected
    note: str = ""  # a warning for the log

    @property
    def change(self) -> bool:
        return self.target is not None and self.target != self.current


def nic_label(index: int, nic: Nic) -> str:
    """ "NIC 1 (vmxnet3, 00:50:56:8a:01:02)": the NIC's place on the VM (from 1), its adapter and
    MAC address. The device label is not used: vSphere's ("Network adapter 1") says no more, and
    one made by the client's temporary device key reads "ethernet--7"."""
    details = ", ".join(x for x in (nic.adapter, nic.mac) if x)
    return f"NIC {index + 1}" + (f" ({details})" if details else "")


def plan(
    client: VSphereClient, job: ReplicationJob, replica_vm: Vm, source_vm: Vm | None
) -> list[NicPlan]:
    """Where each replica NIC goes; FailoverNetworkError if a mapped network is missing."""
    available = {n.name for n in vms.networks_on_host(client, replica_vm.host)}
    shown = ", ".join(sorted(available)) or "none"
    out: list[NicPlan] = []
    if source_vm is not None:
        if len(source_vm.nics) != len(replica_vm.nics):
            raise FailoverNetworkError(
                replica_vm.name,
                f"the source VM has {len(source_vm.nics)} NICs, the replica "
                f"{len(replica_vm.nics)}: replicate it again before failing over",
            )
        for i, (src, rep) in enumerate(zip(source_vm.nics, replica_vm.nics, strict=True)):
            target = job.network.target_for(src.network_name, available)
            label = nic_label(i, rep)
            if target is not None and target not in available:
                raise FailoverNetworkError(
                    replica_vm.name,
                    f"{label}: the network mapping sends {src.network_name!r} to {target!r}, "
                    f"which no longer exists at the DR site (networks there: {shown})",
                )
            note = (
                ""
                if target is not None
                else f"{label} on {src.network_name!r} has no network at the DR site: it stays "
                "disconnected (add a network mapping)"
            )
            out.append(NicPlan(rep.key, label, rep.network_name, target, note))
        return out
    for i, rep in enumerate(replica_vm.nics):
        label = nic_label(i, rep)
        if not rep.start_connected and not rep.connected:
            out.append(NicPlan(rep.key, label, rep.network_name, None, ""))
            continue
        if rep.network_name not in available:
            raise FailoverNetworkError(
                replica_vm.name,
                f"{label} is on network {rep.network_name!r}, which no longer exists at the DR "
                f"site (networks there: {shown})",
            )
        out.append(NicPlan(rep.key, label, rep.network_name, rep.network_name, ""))
    return out


def apply(client: VSphereClient, vm: str, nics: list[NicPlan]) -> list[str]:
    """Move the NICs whose mapping changed; what was done, for the log."""
    done = []
    for nic in nics:
        if nic.change:
            vms.set_nic_network(client, vm, nic.nic_key, nic.target)
            done.append(f"{nic.label} moved from {nic.current!r} to {nic.target!r}")
    return done

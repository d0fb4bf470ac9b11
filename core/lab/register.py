"""The lab as a user would set it up in ReplicaDesk: servers, proxies, a repository, a job.

`register_lab` adds a running lab's two sites to a store the way an administrator would (both
vCenters, or the DR ESXi host, with a stored credential; the DR proxy with the mover client
certificate; a metadata repository on the production side). `lab_job` builds a replication job
over lab VMs to the DR site with the lab's network map. The demo, the benchmarks and the tests
use these; the CLI and the console do the same through their own forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import AlreadyExistsError
from core.lab.lab import LabState
from core.lab.topology import DR_CLUSTER, NETWORK_MAP
from core.model.destination import Destination, Placement
from core.model.infra import BackupProxy, ManagedServer, Protocol, Repository, ServerKind
from core.model.job import BlockSize, DataTransfer, JobSettings, ProxySelection, ReplicationJob
from core.model.network import NetworkMap, NetworkMapping
from core.model.objects import ObjectKind, ObjectRef, SourceSelection
from core.model.secret import Credential, Secret
from core.store.store import Store
from core.vsphere.connection import VSphereClient
from core.vsphere.inventory import read_inventory
from core.vsphere.models import Inventory

PROD_SITE = "production"
DR_SITE = "dr"
DR_PROXY = "dr-proxy"
PROD_PROXY = "prod-proxy"
REPOSITORY = "prod-metadata"
CREDENTIAL = "lab"


@dataclass(frozen=True)
class LabServers:
    production: str  # managed server addresses
    dr: str


def register_lab(store: Store, state: LabState, repository_path: Path) -> LabServers:
    """Add the lab's servers, proxies and a repository to `store` (idempotent)."""
    store.credentials.put(Credential(CREDENTIAL, Secret(state.password), "the lab's vCenters"))
    prod, dr = state.production, state.dr
    _add(
        store.servers.add,
        ManagedServer(
            ServerKind.VCENTER,
            prod.address,
            state.user,
            CREDENTIAL,
            prod.port,
            Protocol.HTTP,
            "lab: production vCenter",
        ),
    )
    _add(
        store.servers.add,
        ManagedServer(
            ServerKind.VCENTER if dr.model == "vpx" else ServerKind.ESXI,
            dr.address,
            state.user,
            CREDENTIAL,
            dr.port,
            Protocol.HTTP,
            "lab: DR site",
        ),
    )
    client = state.client
    _add(
        store.proxies.add,
        BackupProxy(
            DR_PROXY,
            dr.proxy_address,
            DR_SITE,
            dr.proxy_port,
            4,
            tls=client,
            description="lab: DR site proxy",
        ),
    )
    _add(
        store.proxies.add,
        BackupProxy(
            PROD_PROXY,
            prod.proxy_address,
            PROD_SITE,
            prod.proxy_port,
            4,
            tls=client,
            description="lab: production site proxy",
        ),
    )
    repository_path.mkdir(parents=True, exist_ok=True)
    _add(
        store.repositories.add,
        Repository(REPOSITORY, str(repository_path.resolve()), PROD_SITE, None, "lab metadata"),
    )
    return LabServers(prod.address, dr.address)


def _add(add: object, item: object) -> None:
    try:
        add(item)  # type: ignore[operator]
    except AlreadyExistsError:
        return


def inventories(state: LabState) -> tuple[Inventory, Inventory]:
    """The production and DR inventories as they are now."""
    out = []
    for site in (state.production, state.dr):
        with VSphereClient.connect(
            site.address, site.port, state.user, state.password, protocol="http"
        ) as c:
            out.append(read_inventory(c))
    return out[0], out[1]


def lab_job(
    state: LabState,
    name: str,
    vm_names: Sequence[str] = (),
    *,
    folders: Sequence[str] = (),
    keep: int = 7,
    datastore: str = "dr-ds-01",
    block_size: BlockSize = BlockSize.LOCAL,
    use_cbt: bool = True,
) -> ReplicationJob:
    """A job replicating lab VMs (by name) and VM folders (by path) to the DR site."""
    prod, dr = inventories(state)
    objects = []
    for vm_name in vm_names:
        found = prod.vms_named(vm_name)
        if len(found) != 1:
            raise ValueError(f"the lab has {len(found)} VMs named {vm_name!r}")
        objects.append(ObjectRef(ObjectKind.VM, found[0].moref, vm_name))
    for path in folders:
        wanted = tuple(path.split("/"))
        folder = next(f for f in prod.folders if f.path == wanted)
        objects.append(ObjectRef(ObjectKind.FOLDER, folder.moref, folder.name))
    if state.dr.model == "vpx":
        cluster = next(c for c in dr.clusters if c.name == DR_CLUSTER)
        target = ObjectRef(ObjectKind.CLUSTER, cluster.moref, cluster.name)
    else:
        host = dr.hosts[0]
        target = ObjectRef(ObjectKind.HOST, host.moref, host.name)
    ds = next(d for d in dr.datastores if d.name == datastore)
    return ReplicationJob(
        name=name,
        source=SourceSelection(state.production.address, tuple(objects)),
        destination=Destination(
            state.dr.address,
            Placement(target, ObjectRef(ObjectKind.DATASTORE, ds.moref, ds.name)),
        ),
        settings=JobSettings(
            REPOSITORY,
            restore_points=keep,
            block_size=block_size,
            use_cbt=use_cbt,
            enable_cbt=use_cbt,
        ),
        network=NetworkMap(tuple(NetworkMapping(s, t) for s, t in NETWORK_MAP.items())),
        transfer=DataTransfer(target_proxies=ProxySelection((DR_PROXY,))),
    )

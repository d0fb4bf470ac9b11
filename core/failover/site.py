"""The DR site as the replica operations see it: one vSphere session and its datastores' files.

Failover rewrites the replica VM's disk descriptors and reads the restore-point chains, which
the backup server does by direct storage access, as a replication run without a target proxy
does (core.jobs.vmtask): a datastore path is mapped to a local file (`DrSite.local`). A datastore
this machine does not see is a clear error naming it, before anything changed. Only the DR
server is contacted; the production vCenter may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import FailoverError, VSphereError
from core.jobs import servers
from core.model.replicas import Replica
from core.store.store import Store
from core.vsphere.connection import VSphereClient
from core.vsphere.datastore import DatastorePath, local_path
from core.vsphere.inventory import read_inventory, read_vm
from core.vsphere.models import Datastore, Inventory, Vm


@dataclass
class DrSite:
    replica: Replica
    client: VSphereClient
    inventory: Inventory

    @classmethod
    def connect(cls, store: Store, replica: Replica) -> DrSite:
        try:
            client = servers.connect_stored(store, replica.target_server, keepalive=False)
        except VSphereError as e:
            raise FailoverError(
                replica.replica_name, f"the DR server {replica.target_server} is unreachable: {e}"
            ) from e
        try:
            return cls(replica, client, read_inventory(client))
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> DrSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        self.inventory = read_inventory(self.client)

    def replica_vm(self) -> Vm:
        moref = self.replica.replica_moref
        if moref is None:
            raise FailoverError(
                self.replica.replica_name, "no replica VM exists yet (the job never ran it)"
            )
        try:
            return read_vm(self.client, moref)
        except VSphereError as e:
            raise FailoverError(
                self.replica.replica_name, f"the replica VM {moref} cannot be read: {e}"
            ) from e

    def datastore(self, name: str) -> Datastore:
        found = [d for d in self.inventory.datastores if d.name == name]
        if len(found) != 1:
            raise FailoverError(
                self.replica.replica_name,
                f"the DR site has {len(found)} datastores named {name!r}",
            )
        return found[0]

    def local(self, path: str | DatastorePath) -> Path:
        """The local file of a DR datastore path; a clear error when the datastore is not seen."""
        p = path if isinstance(path, DatastorePath) else DatastorePath.parse(path)
        ds = self.datastore(p.datastore)
        try:
            local = local_path(ds, p)
        except VSphereError as e:
            raise FailoverError(self.replica.replica_name, str(e)) from e
        root = local_path(ds, DatastorePath(ds.name, ""))
        if not root.is_dir():
            raise FailoverError(
                self.replica.replica_name,
                f"datastore {ds.name} is not visible from this machine (expected at {root}); "
                "replica operations reach the replica's disk files by direct storage access",
            )
        return local

    def vm_folder(self, vm: Vm) -> DatastorePath:
        return DatastorePath.parse(vm.vmx_path).folder

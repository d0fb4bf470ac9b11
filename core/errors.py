"""The project's own exceptions: every failure core reports is one of these.

As in borg's `helpers/errors.py`, each class's docstring is its message template, formatted with
the positional arguments, and each class carries the exit code the CLI returns for it. Callers
(CLI, console, service) catch `ReplicaDeskError` and show `str(error)`; nothing in core raises a
bare `Exception` for a condition a user can cause.
"""

from __future__ import annotations


class ReplicaDeskError(Exception):
    """Error: {}"""

    exit_code = 2

    def __str__(self) -> str:
        template = (self.__doc__ or "{}").strip().splitlines()[0]
        try:
            return template.format(*self.args)
        except (IndexError, KeyError):
            return f"{template} {self.args!r}"


class UsageError(ReplicaDeskError):
    """{}"""

    exit_code = 2


# --- disk files -------------------------------------------------------------------------------


class DiskFormatError(ReplicaDeskError):
    """{}: not a disk ReplicaDesk can read: {}"""

    exit_code = 10


class SourceTruncatedError(DiskFormatError):
    """{}: the file holds {} bytes but its descriptor says the extent has {} bytes"""


class ChainError(DiskFormatError):
    """{}: broken disk chain: {}"""


# --- replicas and their metadata --------------------------------------------------------------


class ReplicaError(ReplicaDeskError):
    """Replica {}: {}"""

    exit_code = 20


class ReplicaMismatchError(ReplicaError):
    """Replica {} belongs to another disk: {}"""


class ReplicaCorruptError(ReplicaError):
    """Replica {} is damaged: {}"""


class ReplicaLockedError(ReplicaError):
    """Replica {} is in use by another run (lock held by {})"""


class PointNotFoundError(ReplicaError):
    """Replica {} has no restore point {}"""


class MetadataError(ReplicaDeskError):
    """Replica metadata {}: {}"""

    exit_code = 21


class MetadataMissingError(MetadataError):
    """Replica metadata {} is missing: {}"""


class MetadataCorruptError(MetadataError):
    """Replica metadata {} is corrupt: {}"""


class MetadataStaleError(MetadataError):
    """Replica metadata {} is out of date: {}"""


class MetadataMismatchError(MetadataError):
    """Replica metadata {} belongs to another disk or replica: {}"""


# --- data movers ------------------------------------------------------------------------------


class MoverError(ReplicaDeskError):
    """Data mover: {}"""

    exit_code = 30


class MoverConnectionError(MoverError):
    """Cannot talk to the data mover at {}: {}"""


class AuthenticationError(MoverError):
    """The data mover at {} refused the connection or its credentials: {}"""


class ProtocolError(MoverError):
    """Data mover protocol error: {}"""


class BlockIntegrityError(MoverError):
    """Block {} (offset {}) failed its digest check at the target: the data was damaged in transit"""


class RemoteError(MoverError):
    """The target data mover reported: {}"""


class TargetFullError(ReplicaDeskError):
    """The target file system is full while writing {}: free space and run again (no restore point was changed)"""

    exit_code = 31


class CancelledError(ReplicaDeskError):
    """The run was cancelled: {} (no restore point was changed)"""

    exit_code = 130


# --- infrastructure, jobs and the store (core.model, core.store) -------------------------------


class InvalidSettingError(ReplicaDeskError):
    """{}: {}"""

    exit_code = 40

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem

    def under(self, prefix: str) -> InvalidSettingError:
        """The same error with its field path placed under `prefix` (a key path in a job file)."""
        if not prefix:
            return self
        if not self.field:
            return type(self)(prefix, self.problem)
        sep = "" if self.field.startswith("[") else "."
        return type(self)(f"{prefix}{sep}{self.field}", self.problem)


class JobFileError(ReplicaDeskError):
    """Job file {}: {}"""

    exit_code = 40


class ReIpError(ReplicaDeskError):
    """Re-IP of {}: {}"""

    exit_code = 41


class StoreError(ReplicaDeskError):
    """Database {}: {}"""

    exit_code = 50


class SchemaTooNewError(StoreError):
    """Database {} has schema version {}, newer than this ReplicaDesk knows ({}): upgrade ReplicaDesk"""


class MigrationError(StoreError):
    """Database {}: upgrading the schema failed at {}: {} (the database as it was before is at {})"""


class NotFoundError(StoreError):
    """There is no {} {!r}"""


class AlreadyExistsError(StoreError):
    """A {} named {!r} already exists"""


class InUseError(StoreError):
    """{} {!r} is still used by {}"""


class SecretError(StoreError):
    """Secrets key {}: {}"""


class EventStreamError(ReplicaDeskError):
    """A run's event stream: {}"""

    exit_code = 2


class LockHeldError(ReplicaDeskError):
    """{} is being processed by another run ({})"""

    exit_code = 22


# --- the lab: simulated vCenter and ESXi ------------------------------------------------------


class LabError(ReplicaDeskError):
    """Lab: {}"""

    exit_code = 50


class SimulatorBuildError(LabError):
    """Cannot build the vCenter simulator: {}"""


class SimulatorStartError(LabError):
    """The vCenter simulator did not start: {}"""


class ChangeLogError(LabError):
    """Change log {}: {}"""


class LabNetworkError(LabError):
    """Lab network: {}: {}"""


# --- vSphere: vCenter and ESXi through core.vsphere --------------------------------------------


class VSphereError(ReplicaDeskError):
    """vSphere: {}: {}"""

    exit_code = 60
    fault = ""  # the vSphere fault's type name ("InvalidPowerState"), "" when none
    invalid_property = ""  # InvalidArgument's invalidProperty ("changeId"), "" when none


class VSphereConnectionError(VSphereError):
    """Cannot reach vSphere at {}: {} (check the address, port, protocol and firewall)"""


class VSphereCertificateError(VSphereConnectionError):
    """vSphere at {} presents a TLS certificate that is not trusted: {} (trust the CA that issued it, or pin the certificate's thumbprint once its administrator has confirmed it)"""


class VSphereLoginError(VSphereError):
    """vSphere at {} refused the login of {!r}: {} (check the user name and password of the managed server)"""


class VSpherePermissionError(VSphereError):
    """{}: the vSphere user lacks the privilege {} on {} (grant it to the ReplicaDesk account's role)"""


class VSphereNotFoundError(VSphereError):
    """{}: {} is not in the vSphere inventory (deleted, or never there): refresh the inventory and check the job"""


class VSphereStateError(VSphereError):
    """{}: not possible now: {}"""


class VSphereDuplicateNameError(VSphereError):
    """{}: the name {!r} is already used there: pick another name or remove the other object"""


class VSphereFileError(VSphereError):
    """{}: datastore file {}: {}"""


class VSphereInvalidRequestError(VSphereError):
    """{}: not a valid request: {}"""


class VSphereNotSupportedError(VSphereError):
    """{}: this vSphere server does not support it: {}"""


class VSphereResourceError(VSphereError):
    """{}: not enough resources on the target: {}"""


class VSphereTaskTimeoutError(VSphereError):
    """vSphere task {} ({}) did not finish within {:.0f} s (last seen {}); it may still be running: check it in the vSphere client"""


class VSphereNetworkNotFoundError(VSphereError):
    """Network {!r} is not available on host {} (its networks: {}): fix the job's network mapping"""


class VSphereChangeTrackingError(VSphereError):
    """Changed block tracking of {} cannot answer: {} (the run reads the whole disk and compares digests instead)"""


class VSphereQuiesceError(VSphereError):
    """{}: VMware Tools could not quiesce the guest: {} (the VM's event log, and the guest's VSS writers or freeze scripts, say why)"""

    @property
    def reason(self) -> str:
        """The server's words for the failure."""
        return str(self.args[1]) if len(self.args) > 1 else ""


class VSphereCustomizationError(VSphereError):
    """Guest customization of {}: {}"""


class VSpherePlacementError(VSphereError):
    """No host can take {}: {}"""


class VSphereTransferError(VSphereError):
    """Datastore transfer {}: {}"""


# --- the command line: adding managed servers and proxies ---------------------------------------


class ServerCheckError(VSphereError):
    """Managed server {}: {}"""


class ProxyCheckError(MoverError):
    """Proxy {}: {}"""


# --- replication jobs -------------------------------------------------------------------------


class JobRunError(ReplicaDeskError):
    """{}: {}"""

    exit_code = 40


class PreflightError(JobRunError):
    """{}: not replicated: {}"""


# --- the service ------------------------------------------------------------------------------


class ServiceRunningError(ReplicaDeskError):
    """Another ReplicaDesk service already schedules the jobs of {} ({}): stop it first"""

    exit_code = 23


# --- failover, failback and test failover (core.failover) ---------------------------------------


class FailoverError(ReplicaDeskError):
    """Replica {}: {}"""

    exit_code = 50


class ReplicaStateError(FailoverError):
    """Replica {}: {}"""


class FailoverNetworkError(FailoverError):
    """Replica {}: not powered on: {}"""


class FailbackError(FailoverError):
    """Failback of replica {}: {}"""


# --- failover plans and planning (core.plans, core.planning) -----------------------------------


class PlanError(ReplicaDeskError):
    """Failover plan {}: {}"""

    exit_code = 50


class PlanScriptError(PlanError):
    """Failover plan {}: {}"""


class PlanningError(ReplicaDeskError):
    """Planning: {}"""

    exit_code = 40


class ReplicaBackupRefusedError(PlanningError):
    """A backup of {!r} is refused: {}"""

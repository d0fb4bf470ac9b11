"""vSphere faults -> ReplicaDesk errors: one table, one place (as Ansible's vmware client does).

Every pyVmomi call core.vsphere makes goes through `VSphereClient.call`, which hands a SOAP fault
(or a task's ``info.error``) to `map_fault` and a transport failure to `map_transport`. The
resulting error names what was being done (``what``: "power on VM vm-64 (db1)") and says what
the admin can do about it; the original fault stays as ``__cause__`` and its type name in
``error.fault`` so callers can branch on it without importing pyVmomi.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any

from core.errors import (
    VSphereCertificateError,
    VSphereConnectionError,
    VSphereCustomizationError,
    VSphereDuplicateNameError,
    VSphereError,
    VSphereFileError,
    VSphereInvalidRequestError,
    VSphereNotFoundError,
    VSphereNotSupportedError,
    VSpherePermissionError,
    VSphereQuiesceError,
    VSphereResourceError,
    VSphereStateError,
)
from core.vsphere._pyvmomi import vim, vmodl


def moref_text(obj: Any) -> str:
    """ "VirtualMachine vm-64" for a managed object (or its reference as pyVmomi prints it)."""
    if obj is None:
        return "(unknown object)"
    moid = getattr(obj, "_moId", None)
    if moid is not None:
        return f"{type(obj).__name__.rsplit('.', 1)[-1]} {moid}"
    text = str(obj).strip("'")
    kind, _, value = text.partition(":")  # "vim.VirtualMachine:vm-64"
    return f"{kind.rsplit('.', 1)[-1]} {value}" if value else text


def fault_name(fault: Any) -> str:
    return type(fault).__name__.rsplit(".", 1)[-1]


def fault_message(fault: Any) -> str:
    """The server's words for a fault, or its type name when it sent none (vcsim often does not)."""
    msg = (getattr(fault, "msg", None) or "").strip()
    if not msg:
        for m in getattr(fault, "faultMessage", None) or []:
            msg = (getattr(m, "message", None) or "").strip()
            if msg:
                break
    name = fault_name(fault)
    if not msg or msg.startswith("*types."):  # vcsim's localizedMessage is the Go type name
        return name
    return msg if name in msg else f"{msg} ({name})"


def _tag(error: VSphereError, fault: Any) -> VSphereError:
    error.fault = fault_name(fault)
    error.invalid_property = str(getattr(fault, "invalidProperty", "") or "")
    return error


def map_fault(fault: Any, what: str) -> VSphereError:
    """The ReplicaDesk error for a vSphere fault met while doing `what`."""
    return _tag(_map(fault, what), fault)


def _map(fault: Any, what: str) -> VSphereError:
    msg = fault_message(fault)
    if isinstance(fault, vim.fault.NoPermission):
        return VSpherePermissionError(
            what, fault.privilegeId or "(unnamed)", moref_text(getattr(fault, "object", None))
        )
    if isinstance(fault, vim.fault.ApplicationQuiesceFault) or "quiesc" in msg.lower():
        # ESXi reports a guest that could not be quiesced with ApplicationQuiesceFault ("An error
        # occurred while quiescing the virtual machine..."), or with another snapshot fault in
        # words alone ("An error occurred while saving the snapshot: Failed to quiesce the
        # virtual machine.").
        return VSphereQuiesceError(what, msg)
    if isinstance(fault, vmodl.fault.ManagedObjectNotFound):
        return VSphereNotFoundError(what, moref_text(fault.obj))
    if isinstance(fault, vim.fault.InvalidPowerState):
        return VSphereStateError(
            what, f"the VM is {fault.existingState}; this needs it {fault.requestedState}"
        )
    if isinstance(fault, vim.fault.TaskInProgress):
        return VSphereStateError(
            what, f"another task is running on it ({moref_text(fault.task)}): wait for it"
        )
    if isinstance(fault, vim.fault.NicSettingMismatch):
        return VSphereCustomizationError(
            what,
            f"the customization names {fault.numberOfNicsInSpec} NICs but the VM has "
            f"{fault.numberOfNicsInVM}",
        )
    if isinstance(fault, vim.fault.CustomizationPending):
        return VSphereCustomizationError(
            what, "a customization is already pending (it applies at the next power-on)"
        )
    if isinstance(fault, vim.fault.CustomizationFault):
        return VSphereCustomizationError(what, msg)
    if isinstance(fault, vim.fault.DuplicateName):
        return VSphereDuplicateNameError(what, fault.name)
    if isinstance(fault, vim.fault.FileNotFound):
        return VSphereFileError(what, fault.file, "not found")
    if isinstance(fault, vim.fault.FileAlreadyExists):
        return VSphereFileError(what, fault.file, "already exists")
    if isinstance(fault, vim.fault.CannotDeleteFile):
        return VSphereFileError(what, fault.file, "cannot be deleted")
    if isinstance(fault, vim.fault.FileFault):
        return VSphereFileError(what, fault.file, msg)
    if isinstance(fault, vim.fault.InvalidDatastorePath):
        return VSphereInvalidRequestError(
            what, f"{fault.datastorePath!r} is not a datastore path like '[datastore] folder/file'"
        )
    if isinstance(fault, vim.fault.InvalidDatastore):
        return VSphereNotFoundError(what, f"datastore {fault.name or msg}")
    if isinstance(fault, vim.fault.InsufficientResourcesFault | vim.fault.OutOfBounds):
        return VSphereResourceError(what, msg)
    if isinstance(fault, vim.fault.InvalidState):
        return VSphereStateError(what, msg)
    if isinstance(fault, vim.fault.InvalidDeviceSpec):
        return VSphereInvalidRequestError(
            what, f"device change number {fault.deviceIndex} is not valid for this VM ({msg})"
        )
    if isinstance(fault, vmodl.fault.InvalidArgument):
        prop = getattr(fault, "invalidProperty", None)
        return VSphereInvalidRequestError(what, f"invalid {prop}: {msg}" if prop else msg)
    if isinstance(fault, vmodl.fault.NotSupported | vmodl.fault.NotImplemented):
        return VSphereNotSupportedError(what, msg)
    if isinstance(fault, vim.fault.NotAuthenticated):
        return VSphereStateError(what, "the vSphere session has ended and logging in again failed")
    if isinstance(fault, vmodl.fault.RequestCanceled):
        return VSphereStateError(what, "the request was cancelled")
    return VSphereError(what, msg)


def map_transport(exc: BaseException, address: str, presented: str = "") -> VSphereError:
    """A failure below SOAP (refused, reset, timed out, TLS) talking to `address`; `presented`
    is the thumbprint of the certificate the server showed, when the caller fetched it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = str(exc.verify_message or exc)
        if presented:
            why += f"; it presents the certificate with SHA-256 thumbprint {presented}"
        return VSphereCertificateError(address, why)
    if isinstance(exc, ConnectionRefusedError):
        why = "connection refused (is the vCenter/ESXi service running on that port?)"
    elif isinstance(exc, TimeoutError | socket.timeout):
        why = "no answer in time"
    elif isinstance(exc, socket.gaierror):
        why = f"unknown host name ({exc.strerror})"
    elif isinstance(exc, http.client.HTTPException | ConnectionError):
        why = f"the connection broke ({type(exc).__name__}: {exc or 'no details'})"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return VSphereConnectionError(address, why)

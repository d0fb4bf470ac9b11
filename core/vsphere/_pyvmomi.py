"""pyVmomi's namespaces, typed as Any: pyVmomi is untyped, and this keeps that fact in one place.

Every module of core.vsphere imports ``vim``, ``vmodl``, pyVim's ``SmartConnect`` and the few
pyVmomi internals the fast property reader needs (`core.vsphere.fastprops`: the stub's SOAP
adapter, the WSDL type table, pyVmomi's ISO 8601 parser) from here, never from pyVmomi itself,
so mypy's strict mode holds everywhere else and ``Any`` never leaves core.vsphere.
"""

from typing import Any

from pyVim import connect as _connect
from pyVmomi import Iso8601 as _iso8601
from pyVmomi import SoapAdapter as _soap
from pyVmomi import VmomiSupport as _support
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

vim: Any = _vim
vmodl: Any = _vmodl
SmartConnect: Any = _connect.SmartConnect
Disconnect: Any = _connect.Disconnect
ManagedObject: Any = _support.ManagedObject
DataObject: Any = _support.DataObject
SoapAdapter: Any = _soap
GetWsdlType: Any = _support.GetWsdlType
ParseISO8601: Any = _iso8601.ParseISO8601

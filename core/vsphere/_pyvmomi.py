"""pyVmomi's namespaces, typed as Any: pyVmomi is untyped, and this keeps that fact in one place.

Every module of core.vsphere imports ``vim``, ``vmodl`` and pyVim's ``SmartConnect`` from here,
never from pyVmomi itself,
so mypy's strict mode holds everywhere else and ``Any`` never leaves core.vsphere.
"""

from typing import Any

from pyVim import connect as _connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

vim: Any = _vim
vmodl: Any = _vmodl
SmartConnect: Any = _connect.SmartConnect
Disconnect: Any = _connect.Disconnect

"""ReplicaDesk core: the engine behind the console and the CLI.

Nothing here imports Qt. `_fastblocks` is reached only through `core.blocks`; pyVmomi only
through the vSphere adapter. Everything else is plain Python over typed dataclasses.
"""

__version__ = "0.1.0"

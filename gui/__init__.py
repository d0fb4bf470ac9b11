"""ReplicaDesk console (PySide6). Calls core's services and shows what they report.

Arrows point one way: gui -> core -> _fastblocks. The console itself arrives with its own issue;
the engine is usable on its own through the `replicadesk` command.
"""

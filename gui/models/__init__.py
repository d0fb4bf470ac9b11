"""Qt item models over core's data: one table model per kind of record, and the inventory tree.

Models hold frozen dataclasses the `StoreWatcher` (or a worker) read on another thread; they
never touch the store, vSphere or the disk, so they are tested without a window and without a
running event loop. Every table model has column constants and the custom roles of
`gui.models.base`; views sort and filter through `gui.models.filters`.
"""

"""Objects handed to an open job wizard by the main window ("Add to Replication Job", drops on
the Jobs view): which go onto the Virtual Machines step's list, which the job has already,
which are refused, and the sentence that says so (`Added.text`).

A job replicates the objects of one server: its source server when it has objects, else that of
the first object handed over. A VM already in the list, or covered by a container in it, is not
added twice; a VM the job excludes is taken out of the exclusions, since adding it means
replicating it (a VM both added and excluded is what `SourceSelection` refuses). Nothing is
stored here: the wizard's Finish stores the job, its Cancel leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.model.objects import ObjectKind
from gui.models.inventory import DraggedObject

if TYPE_CHECKING:
    from gui.wizard.source_pages import VmsPage


@dataclass(frozen=True)
class Added:
    added: tuple[str, ...]  # names, in the list's order
    present: tuple[str, ...]  # "name" or "name (through container)"
    unexcluded: tuple[str, ...]  # VMs taken out of the exclusions (and added)
    refused: tuple[str, ...]  # one reason each

    @property
    def text(self) -> str:
        parts = []
        if self.added:
            parts.append(f"Added from the Inventory: {', '.join(self.added)}.")
        else:
            parts.append("Nothing added from the Inventory.")
        if self.present:
            parts.append(f"Already in the job: {', '.join(self.present)}.")
        if self.unexcluded:
            parts.append(f"No longer excluded: {', '.join(self.unexcluded)}.")
        if self.refused:
            parts.append(f"Not added: {'; '.join(self.refused)}.")
        return " ".join(parts)


def add_to_vms_page(page: VmsPage, objects: Sequence[DraggedObject], server: str) -> Added:
    """Add `objects` to `page`'s list; `server` is the job's source server ("" for a new job
    with no objects yet)."""
    server = page.objects.server or server or (objects[0].server if objects else "")
    in_list = {o.ref.moref: o.ref.name for o in page.objects.items}
    covered = {v.vm.moref: v for v in page.covered_vms(with_disks=False)}
    excluded = {o.ref.moref: row for row, o in enumerate(page.excluded.items)}
    taken: list[DraggedObject] = []
    present: list[str] = []
    unexcluded: list[str] = []
    refused: list[str] = []
    for obj in objects:
        name, moref = obj.ref.name, obj.ref.moref
        if obj.server != server:
            refused.append(f"{name} is on {obj.server}, not on the job's source server {server}")
            continue
        if moref in in_list:
            present.append(name)
            continue
        if obj.ref.kind == ObjectKind.VM and moref in covered:
            through = [in_list[p] for p in covered[moref].parents if p in in_list]
            present.append(f"{name} (through {through[0]})" if through else name)
            continue
        if moref in excluded:
            unexcluded.append(name)
        in_list[moref] = name
        taken.append(obj)
    if unexcluded:
        page.excluded.remove(excluded[o.ref.moref] for o in taken if o.ref.moref in excluded)
    problems = page.objects.add(taken)
    refused += problems
    kept = {o.ref.moref for o in page.objects.items}
    added = tuple(o.ref.name for o in taken if o.ref.moref in kept)
    return Added(added, tuple(present), tuple(unexcluded), tuple(refused))

"""The wizard's pictures for `replicadesk console --render`: every step of a New Replication Job
made the way a user makes it (VMs dragged from the inventory tree, pickers chosen from the DR
site's inventory), the re-IP step refusing a gateway outside its subnet, and Finish.

Drags are delivered as the drop a user's drag ends in: the tree's own `mimeData` for the
selected rows, handed to the list's model (`dropMimeData`), which is what the view calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QWidget

from core.errors import ReplicaDeskError
from core.lab.lab import LabState
from gui.models.inventory import InventoryModel, Node
from gui.render import settle, wait_for
from gui.wizard.wizard import JobWizard, Step

WIZARD_JOB = "Web tier to DR"
WIZARD_VMS = ("web 02 (canary)", "app+cache")
WIZARD_SIZE = (1180, 760)


def tree_index(model: InventoryModel, server: str, name: str) -> QModelIndex:
    """The index of the VM called `name` on `server` in an inventory tree."""
    stack = [model.index(r, 0) for r in range(model.rowCount())]
    while stack:
        index = stack.pop()
        node = index.data(InventoryModel.NODE_ROLE)
        if isinstance(node, Node) and node.name == name and node.server == server:
            return index
        stack.extend(model.index(r, 0, index) for r in range(model.rowCount(index)))
    raise ReplicaDeskError(f"the inventory tree has no {name!r} on {server}")


def drag_vms(wizard: JobWizard, server: str, names: tuple[str, ...]) -> None:
    """Select `names` in the page's inventory tree and drop them on the objects list."""
    page = wizard.vms_page
    view = page.tree
    view.tree.clearSelection()
    selection = view.tree.selectionModel()
    indexes = []
    for name in names:
        index = view.proxy.mapFromSource(tree_index(page.inventory_model, server, name))
        selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
        indexes.append(view.proxy.mapToSource(index))
    mime = page.inventory_model.mimeData(indexes)
    page.objects.dropMimeData(mime, Qt.DropAction.CopyAction, -1, 0, QModelIndex())


def render_wizard(
    wizard: JobWizard, lab: LabState, save: Callable[[QWidget, str], Path]
) -> list[Path]:
    """Walk a new job through every step, saving each; Finish stores it."""
    paths: list[Path] = []
    wizard.resize(*WIZARD_SIZE)
    wizard.show()
    prod, dr = lab.production.address, lab.dr.address
    wait_for(wizard.inventoryArrived, 30, lambda: not wizard.loading)

    wizard.name_page.name.setText(WIZARD_JOB)
    wizard.name_page.description.setPlainText("Web and app tier, every 4 hours")
    wizard.name_page.network.setChecked(True)
    wizard.name_page.reip.setChecked(True)
    wizard.name_page.seeding.setChecked(True)
    paths.append(save(wizard, "wizard-1-name"))
    wizard.next()

    drag_vms(wizard, prod, WIZARD_VMS)
    settle()
    paths.append(save(wizard, "wizard-2-vms"))
    wizard.vms_page.tabs.setCurrentIndex(1)
    first = wizard.vms_page.covered_vms()[0].vm
    if len(first.disks) > 1:
        wizard.vms_page.set_disk_excluded(first.moref, first.disks[-1].key, True)
    paths.append(save(wizard, "wizard-2-vms-exclusions"))
    wizard.vms_page.tabs.setCurrentIndex(0)
    wizard.next()

    page = wizard.destination_page
    page.server.setCurrentIndex(page.server.findData(dr))
    wait_for(wizard.inventoryArrived, 30, lambda: dr not in wizard.loading)
    page.override_vm.setCurrentIndex(0)
    row = page.add_override()
    datastores = page._cell_combo(row, 1)
    datastores.setCurrentIndex(datastores.count() - 1)
    paths.append(save(wizard, "wizard-3-destination"))
    wizard.next()

    paths.append(save(wizard, "wizard-4-network"))
    wizard.next()

    reip = wizard.reip_page
    reip.add_rule(
        {
            "source": "10.10.*.*",
            "source_mask": "255.255.0.0",
            "target": "172.20.*.*",
            "target_mask": "255.255.0.0",
            "gateway": "172.21.0.1",
            "dns": "172.20.0.10, 172.20.0.11",
            "description": "Production LAN to DR LAN",
        }
    )
    reip.probe.setText("10.10.4.20")
    wizard.next()  # refused: the gateway is outside the target subnet
    paths.append(save(wizard, "wizard-5-reip-invalid"))
    reip.set_cell(0, "gateway", "172.20.0.1")
    reip.probe.setText("10.10.4.21")
    paths.append(save(wizard, "wizard-5-reip"))
    wizard.next()

    wizard.settings_page.points.setValue(29)
    wizard.next()  # refused: 28 at most
    paths.append(save(wizard, "wizard-6-settings-invalid"))
    wizard.settings_page.points.setValue(14)
    paths.append(save(wizard, "wizard-6-settings"))
    wizard.next()

    paths.append(save(wizard, "wizard-7-data-transfer"))
    wizard.next()

    seeding = wizard.seeding_page
    source = seeding.combo(0, 0)
    source.setCurrentIndex(1)
    wizard.next()  # refused: no existing VM chosen
    paths.append(save(wizard, "wizard-7-seeding-invalid"))
    target = seeding.combo(0, 1)
    if target.count() > 1:
        target.setCurrentIndex(1)
    seeding.errors.clear()
    paths.append(save(wizard, "wizard-7-seeding"))
    seeding.table.setRowCount(0)  # the lab's DR VMs are replicas already: no mapping stored
    wizard.next()

    guest = wizard.guest_page
    guest.enabled.setChecked(True)
    guest.go_on.setChecked(True)
    paths.append(save(wizard, "wizard-7-guest-processing"))
    wizard.next()

    schedule = wizard.schedule_page
    schedule.automatic.setChecked(True)
    schedule.periodic.setChecked(True)
    schedule.every.setValue(4)
    schedule.window_box.setChecked(True)
    for day in range(5):
        for hour in range(8, 18):
            schedule._cell(day, hour).setSelected(True)
    schedule._mark(False)
    paths.append(save(wizard, "wizard-8-schedule"))
    wizard.next()

    if wizard.currentId() != int(Step.SUMMARY):
        raise ReplicaDeskError(f"the wizard stopped at step {wizard.currentId()}")
    paths.append(save(wizard, "wizard-9-summary"))
    wizard.accept()
    if not wait_for(wizard.jobSaved, 30, lambda: wizard.saved_job is not None):
        raise ReplicaDeskError("the wizard did not store the job")
    return paths

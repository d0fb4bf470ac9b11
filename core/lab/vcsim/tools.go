// VMware Tools for the lab's guests: vcsim 0.24.2 reports every VM's Tools as not running, always
// (folder.go sets guestToolsNotRunning at creation and nothing changes it), so a failover plan's
// heartbeat gate ("wait for VMware Tools") could never pass. The lab's guests run Tools: once a
// VM is powered on (through this server, or by build.go), its guest reports Tools running
// (guest.toolsRunningStatus guestToolsRunning, guest.toolsStatus toolsOk, and the same in
// summary.guest); after a power off or a guest shutdown, not running. cbt.go routes
// PowerOnVM_Task, PowerOffVM_Task and ShutdownGuest through vcsim, then here. A VM built with
// "no_tools" never runs Tools, powered on or not (a guest whose Tools are stopped or missing:
// what application-aware processing has to cope with).
package main

import (
	"net/http"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var noTools sync.Map // VM moref value -> struct{}: guests without VMware Tools

// withoutTools marks the VM's guest as one that never runs Tools.
func withoutTools(ref types.ManagedObjectReference) {
	noTools.Store(ref.Value, struct{}{})
}

// syncTools makes the VM's Tools state follow its power state.
func syncTools(ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var on bool
	simulator.Map.WithLock(vm, func() {
		on = vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	})
	if _, missing := noTools.Load(ref.Value); missing {
		on = false
	}
	running := string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
	status := types.VirtualMachineToolsStatusToolsNotRunning
	if on {
		running = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		status = types.VirtualMachineToolsStatusToolsOk
	}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: running},
		{Name: "guest.toolsStatus", Val: status},
		{Name: "summary.guest.toolsRunningStatus", Val: running},
		{Name: "summary.guest.toolsStatus", Val: status},
	})
}

// powerThenTools passes a power request on to vcsim, then updates the VM's Tools state.
func powerThenTools(w http.ResponseWriter, r *http.Request, next http.Handler, vm types.ManagedObjectReference) {
	next.ServeHTTP(w, r)
	syncTools(vm)
}

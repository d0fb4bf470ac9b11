// Quiescing that fails, for the lab's guests: vcsim 0.24.2 takes every snapshot it is asked for,
// quiesced or not, so the path where VMware Tools cannot quiesce a running guest (a VSS writer
// that times out, a freeze script that fails) could never be reached. A VM built with
// "quiesce_fails" has such a guest: CreateSnapshot_Task with quiesce=true on it, while it is
// powered on, ends its task in error with ApplicationQuiesceFault and ESXi's words for it
// (quiescedSnapshotFault below), and no snapshot is made: the VM's snapshot tree, its current
// snapshot and the change logs stay as they were. A snapshot without quiescing succeeds, and so
// does a quiesced one of the VM powered off (vSphere ignores quiesce then). cbt.go routes
// CreateSnapshot_Task here first.
package main

import (
	"net/http"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// quiescedSnapshotFault is what ESXi puts in the task's localizedMessage when the guest could not
// be quiesced (pyVmomi hands it to the client as the fault's msg).
const quiescedSnapshotFault = "An error occurred while quiescing the virtual machine. " +
	"See the virtual machine's event log for details."

var quiesceFails sync.Map // VM moref value -> struct{}: guests whose quiescing fails

// failQuiescing marks the VM's guest as one whose quiesced snapshots fail.
func failQuiescing(ref types.ManagedObjectReference) {
	quiesceFails.Store(ref.Value, struct{}{})
}

// quiescingFails tells whether this snapshot request is one the VM's guest fails.
func quiescingFails(req *types.CreateSnapshot_Task) bool {
	if !req.Quiesce {
		return false
	}
	if _, marked := quiesceFails.Load(req.This.Value); !marked {
		return false
	}
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	var on bool
	simulator.Map.WithLock(vm, func() {
		on = vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	})
	return on
}

type createSnapshotResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 CreateSnapshot_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

// failQuiescedSnapshot answers the request with a task of vcsim's (listed like any other) that
// ends in error with ApplicationQuiesceFault, as ESXi's does.
func failQuiescedSnapshot(w http.ResponseWriter, req *types.CreateSnapshot_Task) {
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	task := simulator.CreateTask(vm, "createSnapshot", nil)
	started := time.Now()
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.startTime", Val: started},
		{Name: "info.state", Val: types.TaskInfoStateRunning},
	})
	fault := types.LocalizedMethodFault{
		Fault:            &types.ApplicationQuiesceFault{},
		LocalizedMessage: quiescedSnapshotFault,
	}
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.completeTime", Val: time.Now()},
		{Name: "info.state", Val: types.TaskInfoStateError},
		{Name: "info.result", Val: nil},
		{Name: "info.error", Val: fault},
	})
	writeSOAP(w, &createSnapshotResponse{Returnval: task.Self}, nil)
}

// Renaming networks, a lab extension: vcsim 0.24.2 has no Rename_Task for standard networks
// (MethodNotFound) and its ReconfigureDVPortgroup_Task changes config.name but not the entity's
// name. A replication lab needs "a network renamed at the target", so cbt.go routes Rename_Task
// on a Network or DistributedVirtualPortgroup here: the rename runs as a real vcsim task (seen
// by WaitForUpdates), fails with DuplicateName when the network folder already holds the name,
// and updates name, summary.name and (port groups) config.name and the switch's port group list.
// VM NICs keep pointing at the network's moref (a NIC on a standard network also keeps its old
// backing.deviceName, as after renaming a port group on an ESXi host).
package main

import (
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func renameNetwork(req *types.Rename_Task) (types.ManagedObjectReference, *soapFaultInfo) {
	obj := simulator.Map.Get(req.This)
	ent, ok := obj.(mo.Entity)
	if !ok {
		return types.ManagedObjectReference{}, &soapFaultInfo{
			fmt.Sprintf("managed object not found: %s", req.This),
			&types.ManagedObjectNotFound{Obj: req.This},
		}
	}
	task := simulator.CreateTask(obj, "rename", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		if req.NewName == "" {
			return nil, &types.InvalidArgument{InvalidProperty: "newName"}
		}
		parent := ent.Entity().Parent
		if folder, ok := simulator.Map.Get(*parent).(*simulator.Folder); ok {
			if other := simulator.Map.FindByName(req.NewName, folder.ChildEntity); other != nil {
				if other.Reference() == req.This {
					return nil, nil
				}
				return nil, &types.DuplicateName{Name: req.NewName, Object: other.Reference()}
			}
		}
		var oldName string
		var dvs *types.ManagedObjectReference
		simulator.Map.WithLock(obj, func() {
			oldName = ent.Entity().Name
			switch n := obj.(type) {
			case *mo.Network:
				n.Name = req.NewName
				if n.Summary != nil {
					n.Summary.GetNetworkSummary().Name = req.NewName
				}
			case *simulator.DistributedVirtualPortgroup:
				n.Name = req.NewName
				n.Config.Name = req.NewName
				dvs = n.Config.DistributedVirtualSwitch
				if n.Summary != nil {
					n.Summary.GetNetworkSummary().Name = req.NewName
				}
			}
			ent.Entity().Name = req.NewName
		})
		simulator.Map.Update(obj, []types.PropertyChange{{Name: "name", Val: req.NewName}})
		if dvs != nil {
			if sw, ok := simulator.Map.Get(*dvs).(*simulator.DistributedVirtualSwitch); ok {
				simulator.Map.WithLock(sw, func() {
					for i, name := range sw.Summary.PortgroupName {
						if name == oldName {
							sw.Summary.PortgroupName[i] = req.NewName
						}
					}
				})
			}
		}
		return nil, nil
	})
	return task.Run(), nil
}

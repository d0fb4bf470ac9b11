// Building the inventory of the topology through the simulator's own in-process vSphere API
// (vim25 client over simulator.Service, as simulator.Model.Create does), so every object is made
// by the same code paths a real client would exercise: CreateDatacenter, CreateCluster,
// AddHost/AddStandaloneHost, CreateLocalDatastore, CreateDVS, AddPortgroup, AddPortGroup,
// CreateFolder, CreateResourcePool, CreateVM_Task and PowerOnVM_Task.
//
// Device keys follow vSphere's conventions so tests can rely on them: SCSI controller 1000, disks
// 2000, 2001, ... in topology order, NICs 4000, 4001, ...; disks carry capacityInKB and
// capacityInBytes (vcsim leaves the latter unset when a client omits it).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type lab struct {
	topo       *topology
	model      *simulator.Model
	cbt        *cbt
	datastores []datastoreInfo
	dirs       []string
	cleaned    bool
}

// cleanup removes what the model and this launcher made on disk. Safe to call twice.
func (l *lab) cleanup() {
	if l.cleaned {
		return
	}
	l.cleaned = true
	if l.model.Service != nil {
		l.model.Remove()
	}
	for _, dir := range l.dirs {
		_ = os.RemoveAll(dir)
	}
}

// dcState is what building one datacenter needs to look names up.
type dcState struct {
	folders    *object.DatacenterFolders
	hosts      map[string]*object.HostSystem
	hostOrder  []string
	hostPool   map[string]*object.ResourcePool
	hostCR     map[string]string // host -> cluster name ("" for standalone)
	pools      map[string]*object.ResourcePool
	datastores map[string]types.ManagedObjectReference
	backings   map[string]types.BaseVirtualDeviceBackingInfo
	vmFolders  map[string]*object.Folder
}

func (l *lab) build(ctx context.Context) error {
	c, err := vim25.NewClient(ctx, l.model.Service)
	if err != nil {
		return err
	}
	for _, dc := range l.topo.Datacenters {
		if err := l.buildDatacenter(ctx, c, dc); err != nil {
			return fmt.Errorf("datacenter %q: %w", dc.Name, err)
		}
	}
	return nil
}

func waitRef(ctx context.Context, task *object.Task, err error) (types.ManagedObjectReference, error) {
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ref, _ := info.Result.(types.ManagedObjectReference)
	return ref, nil
}

func (l *lab) buildDatacenter(ctx context.Context, c *vim25.Client, spec datacenter) error {
	st := &dcState{
		hosts:      map[string]*object.HostSystem{},
		hostPool:   map[string]*object.ResourcePool{},
		hostCR:     map[string]string{},
		pools:      map[string]*object.ResourcePool{},
		datastores: map[string]types.ManagedObjectReference{},
		backings:   map[string]types.BaseVirtualDeviceBackingInfo{},
		vmFolders:  map[string]*object.Folder{},
	}
	var dc *object.Datacenter
	if l.topo.Model == "esx" {
		dc = object.NewDatacenter(c, esx.Datacenter.Reference())
		spec.Name = "ha-datacenter"
		host := object.NewHostSystem(c, esx.HostSystem.Reference())
		pool, err := host.ResourcePool(ctx)
		if err != nil {
			return err
		}
		name := esx.HostSystem.Summary.Config.Name
		st.hosts[name], st.hostPool[name] = host, pool
		st.hostOrder = append(st.hostOrder, name)
	} else {
		var err error
		if dc, err = object.NewRootFolder(c).CreateDatacenter(ctx, spec.Name); err != nil {
			return err
		}
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	st.folders = folders
	st.vmFolders[""] = folders.VmFolder

	addHost := func(name, clusterName string, task *object.Task, err error) error {
		ref, err := waitRef(ctx, task, err)
		if err != nil {
			return fmt.Errorf("host %q: %w", name, err)
		}
		if _, dup := st.hosts[name]; dup {
			return fmt.Errorf("host %q defined twice", name)
		}
		host := object.NewHostSystem(c, ref)
		pool, err := host.ResourcePool(ctx)
		if err != nil {
			return err
		}
		st.hosts[name], st.hostPool[name], st.hostCR[name] = host, pool, clusterName
		st.hostOrder = append(st.hostOrder, name)
		return nil
	}
	for _, name := range spec.Hosts {
		task, err := folders.HostFolder.AddStandaloneHost(ctx, types.HostConnectSpec{HostName: name}, true, nil, nil)
		if err := addHost(name, "", task, err); err != nil {
			return err
		}
	}
	for _, cs := range spec.Clusters {
		cl, err := folders.HostFolder.CreateCluster(ctx, cs.Name, types.ClusterConfigSpecEx{})
		if err != nil {
			return fmt.Errorf("cluster %q: %w", cs.Name, err)
		}
		for _, name := range cs.Hosts {
			task, err := cl.AddHost(ctx, types.HostConnectSpec{HostName: name}, true, nil, nil)
			if err := addHost(name, cs.Name, task, err); err != nil {
				return err
			}
		}
		root, err := cl.ResourcePool(ctx)
		if err != nil {
			return err
		}
		for _, name := range cs.ResourcePools {
			pool, err := root.Create(ctx, name, types.DefaultResourceConfigSpec())
			if err != nil {
				return fmt.Errorf("resource pool %q: %w", name, err)
			}
			st.pools[cs.Name+"\x00"+name] = pool
		}
	}

	if err := l.buildNetworks(ctx, c, spec, st); err != nil {
		return err
	}
	if err := l.buildDatastores(ctx, spec, st); err != nil {
		return err
	}
	for _, v := range spec.VMs {
		if err := l.buildVM(ctx, c, v, st); err != nil {
			return fmt.Errorf("VM %q: %w", v.Name, err)
		}
	}
	return nil
}

func (l *lab) buildNetworks(ctx context.Context, c *vim25.Client, spec datacenter, st *dcState) error {
	for _, name := range spec.Networks {
		added := false
		for _, hname := range st.hostOrder {
			ns, err := st.hosts[hname].ConfigManager().NetworkSystem(ctx)
			if err != nil {
				return err
			}
			err = ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: name, VswitchName: "vSwitch0"})
			// vcsim keeps one Network entity per datacenter: the second host's AddPortGroup
			// answers DuplicateName, which is expected here.
			if err != nil && added && isFault[*types.DuplicateName](err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("port group %q on %q: %w", name, hname, err)
			}
			added = true
		}
		if !added {
			return fmt.Errorf("port group %q: the datacenter has no host to carry it", name)
		}
	}

	netFolder := simulator.Map.Get(st.folders.NetworkFolder.Reference()).(*simulator.Folder)
	for _, sw := range spec.Switches {
		var cs types.DVSCreateSpec
		cs.ConfigSpec = &types.VMwareDVSConfigSpec{}
		cs.ConfigSpec.GetDVSConfigSpec().Name = sw.Name
		task, err := st.folders.NetworkFolder.CreateDVS(ctx, cs)
		ref, err := waitRef(ctx, task, err)
		if err != nil {
			return fmt.Errorf("distributed switch %q: %w", sw.Name, err)
		}
		dvs := object.NewDistributedVirtualSwitch(c, ref)
		// vcsim ignores the hosts of a DVSCreateSpec: every host joins by a reconfiguration.
		members := &types.DVSConfigSpec{}
		for _, hname := range st.hostOrder {
			members.Host = append(members.Host, types.DistributedVirtualSwitchHostMemberConfigSpec{
				Operation: string(types.ConfigSpecOperationAdd),
				Host:      st.hosts[hname].Reference(),
			})
		}
		task, err = dvs.Reconfigure(ctx, members)
		if err := waitTask(ctx, task, err); err != nil {
			return fmt.Errorf("distributed switch %q: adding hosts: %w", sw.Name, err)
		}
		for _, pg := range sw.Portgroups {
			task, err := dvs.AddPortgroup(ctx, []types.DVPortgroupConfigSpec{{Name: pg, Type: "earlyBinding"}})
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil {
				return fmt.Errorf("distributed port group %q: %w", pg, err)
			}
			ent := simulator.Map.FindByName(pg, netFolder.ChildEntity)
			if ent == nil {
				return fmt.Errorf("distributed port group %q not found after creation", pg)
			}
			backing, err := object.NewDistributedVirtualPortgroup(c, ent.Reference()).EthernetCardBackingInfo(ctx)
			if err != nil {
				return err
			}
			st.backings[pg] = backing
		}
	}
	// Standard networks (the default "VM Network" and the topology's port groups) are found by
	// name: vcsim resolves a NetworkBackingInfo's deviceName itself.
	for _, ref := range netFolder.ChildEntity {
		if ref.Type != "Network" {
			continue
		}
		if ent, ok := simulator.Map.Get(ref).(mo.Entity); ok {
			name := ent.Entity().Name
			if _, seen := st.backings[name]; !seen {
				st.backings[name] = &types.VirtualEthernetCardNetworkBackingInfo{
					VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: name},
				}
			}
		}
	}
	return nil
}

func (l *lab) buildDatastores(ctx context.Context, spec datacenter, st *dcState) error {
	for _, ds := range spec.Datastores {
		dir, err := os.MkdirTemp(l.topo.DatastoreRoot, "replicadesk-vcsim-ds-")
		if err != nil {
			return fmt.Errorf("datastore %q: %w", ds.Name, err)
		}
		l.dirs = append(l.dirs, dir)
		hosts := ds.Hosts
		if len(hosts) == 0 {
			hosts = st.hostOrder
		}
		if len(hosts) == 0 {
			return fmt.Errorf("datastore %q: the datacenter has no host to mount it", ds.Name)
		}
		for _, hname := range hosts {
			host, ok := st.hosts[hname]
			if !ok {
				return fmt.Errorf("datastore %q: unknown host %q", ds.Name, hname)
			}
			dss, err := host.ConfigManager().DatastoreSystem(ctx)
			if err != nil {
				return err
			}
			obj, err := dss.CreateLocalDatastore(ctx, ds.Name, dir)
			if err != nil {
				return fmt.Errorf("datastore %q on %q: %w", ds.Name, hname, err)
			}
			st.datastores[ds.Name] = obj.Reference()
		}
		l.datastores = append(l.datastores, datastoreInfo{Datacenter: spec.Name, Name: ds.Name, Path: dir})
	}
	return nil
}

func (l *lab) vmFolder(ctx context.Context, st *dcState, path string) (*object.Folder, error) {
	path = strings.Trim(path, "/")
	if f, ok := st.vmFolders[path]; ok {
		return f, nil
	}
	parentPath, name := "", path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	parent, err := l.vmFolder(ctx, st, parentPath)
	if err != nil {
		return nil, err
	}
	f, err := parent.CreateFolder(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("folder %q: %w", path, err)
	}
	st.vmFolders[path] = f
	return f, nil
}

func (l *lab) buildVM(ctx context.Context, c *vim25.Client, v vm, st *dcState) error {
	hostName := v.Host
	if hostName == "" {
		for _, h := range st.hostOrder {
			if st.hostCR[h] == v.Cluster {
				hostName = h
				break
			}
		}
	}
	host, ok := st.hosts[hostName]
	if !ok {
		return fmt.Errorf("unknown host %q", hostName)
	}
	if v.Cluster != "" && st.hostCR[hostName] != v.Cluster {
		return fmt.Errorf("host %q is not in cluster %q", hostName, v.Cluster)
	}
	pool := st.hostPool[hostName]
	if v.ResourcePool != "" {
		if pool, ok = st.pools[st.hostCR[hostName]+"\x00"+v.ResourcePool]; !ok {
			return fmt.Errorf("unknown resource pool %q", v.ResourcePool)
		}
	}
	dsName := v.Datastore
	if dsName == "" {
		dsName = l.firstDatastore(st)
	}
	if _, ok := st.datastores[dsName]; !ok {
		return fmt.Errorf("unknown datastore %q", dsName)
	}
	folder, err := l.vmFolder(ctx, st, v.Folder)
	if err != nil {
		return err
	}

	cpus, mem, guest := v.CPUs, v.MemoryMB, v.GuestID
	if cpus <= 0 {
		cpus = 1
	}
	if mem <= 0 {
		mem = 256
	}
	if guest == "" {
		guest = string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest)
	}
	config := types.VirtualMachineConfigSpec{
		Name:                  v.Name,
		GuestId:               guest,
		NumCPUs:               cpus,
		MemoryMB:              mem,
		ChangeTrackingEnabled: types.NewBool(v.CBT),
		Files:                 &types.VirtualMachineFileInfo{VmPathName: "[" + dsName + "]"},
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return err
	}
	scsi.GetVirtualDevice().Key = 1000
	devices = append(devices, scsi)
	for i, d := range v.Disks {
		ds := d.Datastore
		if ds == "" {
			ds = dsName
		}
		dsRef, ok := st.datastores[ds]
		if !ok {
			return fmt.Errorf("disk %d: unknown datastore %q", i, ds)
		}
		disk := &types.VirtualDisk{
			CapacityInKB:    d.CapacityKB,
			CapacityInBytes: d.CapacityKB * 1024,
			VirtualDevice: types.VirtualDevice{
				Key: int32(2000 + i),
				Backing: &types.VirtualDiskFlatVer2BackingInfo{
					DiskMode:        string(types.VirtualDiskModePersistent),
					ThinProvisioned: types.NewBool(d.Thin),
					VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
						// A bare "[ds]" lets vcsim name the file <vm>.vmdk, <vm>_1.vmdk, ...
						FileName:  "[" + ds + "]",
						Datastore: &dsRef,
					},
				},
			},
		}
		devices.AssignController(disk, scsi.(types.BaseVirtualController))
		devices = append(devices, disk)
	}
	for i, net := range v.Networks {
		backing, ok := st.backings[net]
		if !ok {
			// An unknown network name would panic vcsim (LAB.md): refuse it here.
			return fmt.Errorf("unknown network %q", net)
		}
		nic, err := devices.CreateEthernetCard("vmxnet3", backing)
		if err != nil {
			return err
		}
		nic.GetVirtualDevice().Key = int32(4000 + i)
		devices = append(devices, nic)
	}
	config.DeviceChange, err = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return err
	}
	task, err := folder.CreateVM(ctx, config, pool, host)
	ref, err := waitRef(ctx, task, err)
	if err != nil {
		return err
	}
	if v.CBT {
		l.cbt.enable(simulator.Map.Get(ref).(*simulator.VirtualMachine))
	}
	if v.NoTools {
		withoutTools(ref)
	}
	if v.QuiesceFails {
		failQuiescing(ref)
	}
	if v.PowerOn {
		task, err := object.NewVirtualMachine(c, ref).PowerOn(ctx)
		if err := waitTask(ctx, task, err); err != nil {
			return fmt.Errorf("power on: %w", err)
		}
		syncTools(ref)
	}
	return nil
}

// isFault tells whether err is a SOAP fault of type T.
func isFault[T any](err error) bool {
	if !soap.IsSoapFault(err) {
		return false
	}
	_, ok := soap.ToSoapFault(err).VimFault().(T)
	return ok
}

func waitTask(ctx context.Context, task *object.Task, err error) error {
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

func (l *lab) firstDatastore(st *dcState) string {
	for _, dc := range l.topo.Datacenters {
		for _, ds := range dc.Datastores {
			if _, ok := st.datastores[ds.Name]; ok {
				return ds.Name
			}
		}
	}
	return ""
}

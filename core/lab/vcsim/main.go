// Command replicadesk-vcsim is ReplicaDesk's lab vCenter/ESXi: govmomi's simulator (vcsim,
// Debian's govmomi 0.24.2) built with an inventory read from a topology file, plus the vSphere
// calls vcsim lacks that a replication product needs (QueryChangedDiskAreas, see cbt.go).
//
// It sits under core/lab: core/lab/simulator.py builds this package in GOPATH mode, writes the
// topology JSON, starts the binary (possibly inside a network namespace, on the address the
// topology names), reads the one JSON line it prints on stdout, and sends SIGTERM to stop it.
//
// Usage: replicadesk-vcsim TOPOLOGY.json
//
// On SIGTERM or SIGINT the server is closed and the model removed (s.Close(); m.Remove()), which
// deletes the temporary datastore directories this process made.
//
// What vcsim 0.24.2 does, seen while writing this launcher (source and tests/core/lab):
//   - simulator.Model can only repeat one shape per datacenter (N clusters of M hosts...), so the
//     launcher starts from an empty model and builds the topology through the API (build.go).
//   - Tasks run synchronously inside the SOAP call: when CreateSnapshot_Task answers, the snapshot
//     exists (cbt.go relies on it).
//   - CreateDVS ignores the hosts in its spec; hosts join with a ReconfigureDvs_Task.
//   - A standard port group is one Network entity per datacenter: AddPortGroup with the same name
//     on a second host answers DuplicateName and does not add it to that host's vSwitch.
//   - There is no Rename_Task for networks, and ReconfigureDVPortgroup_Task changes config.name but
//     not the entity's name (rename.go adds the rename).
//   - A datastore's moref value is its local folder plus "@<datastore folder>".
//   - A disk whose fileName is just "[ds]" gets <vm>.vmdk, <vm>_1.vmdk... in the VM's folder on
//     that datastore (numbering per datastore); vcsim logs a harmless FileAlreadyExists meanwhile.
//   - snapshot.config is a shallow copy of the VM's config: the device objects are shared, so a
//     snapshot "sees" later device edits (cbt.go gives snapshots their own disk copies).
//   - ReconfigVM_Task edits capacityInKB/capacityInBytes of a disk (a resize), stores
//     changeTrackingEnabled, and adds disks with fileOperation "create" and a unitNumber.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

// ready is the one line printed on stdout once the server accepts connections.
type ready struct {
	URL        string          `json:"url"`
	PID        int             `json:"pid"`
	Model      string          `json:"model"`
	Datastores []datastoreInfo `json:"datastores"`
}

type datastoreInfo struct {
	Datacenter string `json:"datacenter"`
	Name       string `json:"name"`
	Path       string `json:"path"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "replicadesk-vcsim: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: %s TOPOLOGY.json", os.Args[0])
	}
	topo, err := loadTopology(os.Args[1])
	if err != nil {
		fail("topology %s: %s", os.Args[1], err)
	}
	tlsConfig, err := serverTLS(topo)
	if err != nil {
		fail("topology %s: %s", os.Args[1], err)
	}

	// Stop signals are caught before anything is created, so that a SIGTERM arriving while the
	// inventory is being built still removes the datastore directories.
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	var m *simulator.Model
	if topo.Model == "esx" {
		m = simulator.ESX()
	} else {
		m = simulator.VPX()
	}
	// Start from an empty model (no DC0, hosts or VMs of vcsim's own): the inventory is built
	// from the topology by build.go through the in-process API.
	m.Datacenter, m.Portgroup, m.Host, m.Cluster, m.ClusterHost = 0, 0, 0, 0, 0
	m.Datastore, m.Machine, m.Pool, m.App, m.Pod, m.Folder = 0, 0, 0, 0, 0, 0
	m.Autostart = false

	cbt := newCBT(topo.ChangelogDir, topo.CBTMaxAreas)
	lab := &lab{topo: topo, model: m, cbt: cbt}
	defer lab.cleanup()

	if err := m.Create(); err != nil {
		lab.cleanup()
		fail("creating the model: %s", err)
	}
	if err := lab.build(context.Background()); err != nil {
		lab.cleanup()
		fail("building the inventory: %s", err)
	}

	m.Service.Listen = &url.URL{Host: topo.Listen}
	if topo.LoginUser != "" {
		// vcsim then refuses any other user name or password (InvalidLogin), as vSphere does.
		m.Service.Listen.User = url.UserPassword(topo.LoginUser, topo.LoginPassword)
	}
	m.Service.TLS = tlsConfig // nil: plain http
	s := m.Service.NewServer()
	s.Server.Config.Handler = cbt.wrap(s.Server.Config.Handler)

	info := ready{URL: s.URL.String(), PID: os.Getpid(), Model: topo.Model}
	for _, ds := range lab.datastores {
		info.Datastores = append(info.Datastores, ds)
	}
	sort.Slice(info.Datastores, func(i, j int) bool {
		a, b := info.Datastores[i], info.Datastores[j]
		return a.Datacenter+"\x00"+a.Name < b.Datacenter+"\x00"+b.Name
	})
	line, _ := json.Marshal(info)
	fmt.Println(string(line))
	_ = os.Stdout.Sync()

	<-stop
	s.Close()
	lab.cleanup()
}

// The topology file: what the lab's vCenter (model "vpx") or standalone ESXi host (model "esx")
// contains. Written by core/lab/simulator.py (SimulatorSpec.to_json); every name is used as
// given, so names with spaces, brackets, '#', '&', '+', '%' and non-ASCII letters reach vSphere
// unchanged ('/' is refused: vcsim uses VM names as directory names).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type topology struct {
	Model         string       `json:"model"`          // "vpx" or "esx"
	Listen        string       `json:"listen"`         // host:port, port 0 picks a free one
	ChangelogDir  string       `json:"changelog_dir"`  // CBT change log root (cbt.go)
	CBTMaxAreas   int          `json:"cbt_max_areas"`  // areas per QueryChangedDiskAreas answer
	DatastoreRoot string       `json:"datastore_root"` // parent of the datastore temp dirs
	TLSCert       string       `json:"tls_cert"`       // PEM certificate (chain): serve https (tls.go)
	TLSKey        string       `json:"tls_key"`        // PEM private key of tls_cert
	LoginUser     string       `json:"login_user"`     // "": any user name and password log in
	LoginPassword string       `json:"login_password"` // with login_user: the only password taken
	Datacenters   []datacenter `json:"datacenters"`
}

type datacenter struct {
	Name       string      `json:"name"`
	Datastores []datastore `json:"datastores"`
	Networks   []string    `json:"networks"` // standard port groups on vSwitch0 of every host
	Switches   []dvswitch  `json:"switches"`
	Clusters   []cluster   `json:"clusters"`
	Hosts      []string    `json:"hosts"` // standalone hosts
	VMs        []vm        `json:"vms"`
}

type datastore struct {
	Name  string   `json:"name"`
	Hosts []string `json:"hosts"` // hosts that mount it; empty: every host of the datacenter
}

type dvswitch struct {
	Name       string   `json:"name"`
	Portgroups []string `json:"portgroups"`
}

type cluster struct {
	Name          string   `json:"name"`
	Hosts         []string `json:"hosts"`
	ResourcePools []string `json:"resource_pools"`
}

type disk struct {
	CapacityKB int64  `json:"capacity_kb"`
	Thin       bool   `json:"thin"`
	Datastore  string `json:"datastore"` // empty: the VM's datastore
}

type vm struct {
	Name         string   `json:"name"`
	Host         string   `json:"host"`          // placement; empty with a cluster: its first host
	Cluster      string   `json:"cluster"`       // optional, checked against the host
	ResourcePool string   `json:"resource_pool"` // child pool of the cluster; empty: root pool
	Folder       string   `json:"folder"`        // VM folder path below the datacenter's vm folder
	Datastore    string   `json:"datastore"`
	CPUs         int32    `json:"cpus"`
	MemoryMB     int64    `json:"memory_mb"`
	GuestID      string   `json:"guest_id"`
	Disks        []disk   `json:"disks"`
	Networks     []string `json:"networks"` // one NIC per entry
	PowerOn      bool     `json:"power_on"`
	CBT          bool     `json:"cbt"`           // config.changeTrackingEnabled at creation
	NoTools      bool     `json:"no_tools"`      // the guest never runs VMware Tools (tools.go)
	QuiesceFails bool     `json:"quiesce_fails"` // quiesced snapshots fail (quiesce.go)
}

func loadTopology(path string) (*topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t topology
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	return &t, t.validate()
}

func (t *topology) validate() error {
	switch t.Model {
	case "vpx", "esx":
	default:
		return fmt.Errorf("model must be \"vpx\" or \"esx\", not %q", t.Model)
	}
	if t.Listen == "" {
		t.Listen = "127.0.0.1:0"
	}
	if t.CBTMaxAreas <= 0 {
		t.CBTMaxAreas = 4
	}
	if t.ChangelogDir == "" {
		return fmt.Errorf("changelog_dir is required")
	}
	if t.Model == "esx" {
		if len(t.Datacenters) != 1 {
			return fmt.Errorf("an esx model has exactly one datacenter (ha-datacenter)")
		}
		dc := t.Datacenters[0]
		if dc.Name != "" && dc.Name != "ha-datacenter" {
			return fmt.Errorf("an esx model's datacenter is ha-datacenter, not %q", dc.Name)
		}
		if len(dc.Clusters) > 0 || len(dc.Hosts) > 0 || len(dc.Switches) > 0 {
			return fmt.Errorf("an esx model has no clusters, extra hosts or distributed switches")
		}
	}
	for _, dc := range t.Datacenters {
		names := map[string]bool{}
		for _, v := range dc.VMs {
			if v.Name == "" || strings.Contains(v.Name, "/") {
				return fmt.Errorf("datacenter %q: bad VM name %q (empty or with '/')", dc.Name, v.Name)
			}
			if names[v.Name] {
				return fmt.Errorf("datacenter %q: VM name %q used twice", dc.Name, v.Name)
			}
			names[v.Name] = true
			for _, d := range v.Disks {
				if d.CapacityKB <= 0 {
					return fmt.Errorf("VM %q: disk capacity_kb must be positive", v.Name)
				}
			}
		}
		if len(dc.VMs) > 0 && len(dc.Datastores) == 0 {
			return fmt.Errorf("datacenter %q has VMs but no datastore", dc.Name)
		}
	}
	return nil
}

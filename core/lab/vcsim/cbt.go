// Changed block tracking for the lab: vcsim 0.24.2 has no QueryChangedDiskAreas, so this wraps
// the server's HTTP handler, catches the SOAP calls that need it and answers them from the
// change log (changelog.go). Everything else goes to vcsim untouched. The VirtualMachine object
// itself is never wrapped (re-registering it with Map.Put breaks vcsim).
//
// QueryChangedDiskAreas(vm, snapshot, deviceKey, startOffset, changeId) answers a DiskChangeInfo:
//   - changeId "*": every area ever written (all epochs), i.e. the allocated areas of the disk;
//     "<uuid>/<seq>": the areas written after <seq>, which must belong to the current epoch.
//   - snapshot: the areas up to the point of that snapshot (the S record written when it was
//     created through this server); a snapshot of the VM without a record (CBT enabled after it
//     was taken) counts up to now; no snapshot: up to now. The disk and its capacity are looked
//     up in the snapshot's own device list when a snapshot is given.
//   - at most cbt_max_areas areas per answer: when more remain, the answer's length stops at the
//     end of the last area returned and the client continues from startOffset+length; the last
//     answer covers to the end of the disk.
//
// Faults (real SOAP faults, as vSphere sends them): ManagedObjectNotFound for an unknown VM,
// FileNotFound for a device key that is not a disk of the VM (or of the snapshot), FileFault when
// change tracking is off for the VM, InvalidArgument (invalidProperty "changeId", "startOffset"
// or "snapshot") for a malformed or stale change ID, an offset outside the disk, or a snapshot
// that is not the VM's. The call is not checked against a login session (vcsim accepts any user).
//
// Also caught, then passed on to vcsim:
//   - CreateSnapshot_Task: on success an S record goes into each disk's log, and the snapshot's
//     device list gets its own copies of the disks whose backing.changeId is the snapshot's point
//     (vcsim otherwise aliases the VM's devices into snapshot.config); the VM's live disks get the
//     same change ID. Only when change tracking is on.
//   - ReconfigVM_Task changing changeTrackingEnabled: turning it off starts a new epoch in each
//     log (old change IDs become invalid, as when VMware deletes the -ctk file); turning it on
//     sets the live disks' backing.changeId. A disk whose capacity changed starts a new epoch at
//     its next snapshot or query.
//   - PowerOnVM_Task, PowerOffVM_Task, ShutdownGuest: the VM's Tools state follows (tools.go).
//
// A quiesced CreateSnapshot_Task on a running VM whose guest fails quiescing never reaches vcsim:
// quiesce.go answers it with a failed task.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

type cbt struct {
	dir      string
	maxAreas int
}

func newCBT(dir string, maxAreas int) *cbt {
	return &cbt{dir: dir, maxAreas: maxAreas}
}

var watched = [][]byte{
	[]byte("QueryChangedDiskAreas"), []byte("CreateSnapshot_Task"), []byte("ReconfigVM_Task"),
	[]byte("Rename_Task"), []byte("PowerOnVM_Task"), []byte("PowerOffVM_Task"),
	[]byte("ShutdownGuest"),
}

func (c *cbt) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		interesting := false
		for _, name := range watched {
			interesting = interesting || bytes.Contains(body, name)
		}
		if !interesting {
			next.ServeHTTP(w, r)
			return
		}
		method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
		if err != nil {
			next.ServeHTTP(w, r) // vcsim answers malformed requests itself
			return
		}
		switch req := method.Body.(type) {
		case *types.QueryChangedDiskAreas:
			info, fault := c.query(req)
			var res interface{}
			if fault == nil {
				res = &queryResponse{Returnval: *info}
			}
			writeSOAP(w, res, fault)
		case *types.Rename_Task:
			if req.This.Type == "Network" || req.This.Type == "DistributedVirtualPortgroup" {
				ref, fault := renameNetwork(req)
				writeSOAP(w, &renameResponse{Returnval: ref}, fault)
			} else {
				next.ServeHTTP(w, r)
			}
		case *types.CreateSnapshot_Task:
			if quiescingFails(req) {
				failQuiescedSnapshot(w, req)
			} else {
				c.createSnapshot(w, r, next, req)
			}
		case *types.ReconfigVM_Task:
			c.reconfigure(w, r, next, req)
		case *types.PowerOnVM_Task:
			powerThenTools(w, r, next, req.This)
		case *types.PowerOffVM_Task:
			powerThenTools(w, r, next, req.This)
		case *types.ShutdownGuest:
			powerThenTools(w, r, next, req.This)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// --- QueryChangedDiskAreas ------------------------------------------------------------------

type diskRef struct {
	key      int32
	capacity int64
	file     string
}

func diskCapacity(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

func disksOf(devices []types.BaseVirtualDevice) []diskRef {
	var out []diskRef
	for _, dev := range devices {
		d, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		ref := diskRef{key: d.Key, capacity: diskCapacity(d)}
		if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			ref.file = b.GetVirtualDeviceFileBackingInfo().FileName
		}
		out = append(out, ref)
	}
	return out
}

func snapshotInTree(tree []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference) bool {
	for _, node := range tree {
		if node.Snapshot == ref || snapshotInTree(node.ChildSnapshotList, ref) {
			return true
		}
	}
	return false
}

// vmState is what a query needs from the VM, read under the VM's lock.
type vmState struct {
	cbtOn     bool
	live      []diskRef
	snapDisks []diskRef
	snapFound bool
}

func readVM(vm *simulator.VirtualMachine, snap *types.ManagedObjectReference) vmState {
	var st vmState
	simulator.Map.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		st.cbtOn = vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
		st.live = disksOf(vm.Config.Hardware.Device)
		if snap != nil && vm.Snapshot != nil && snapshotInTree(vm.Snapshot.RootSnapshotList, *snap) {
			st.snapFound = true
		}
	})
	if st.snapFound {
		if s, ok := simulator.Map.Get(*snap).(*simulator.VirtualMachineSnapshot); ok {
			simulator.Map.WithLock(s, func() { st.snapDisks = disksOf(s.Config.Hardware.Device) })
		} else {
			st.snapFound = false
		}
	}
	return st
}

func findDisk(disks []diskRef, key int32) *diskRef {
	for i := range disks {
		if disks[i].key == key {
			return &disks[i]
		}
	}
	return nil
}

func invalidArgument(prop, msg string) *soapFaultInfo {
	return &soapFaultInfo{msg, &types.InvalidArgument{InvalidProperty: prop}}
}

func (c *cbt) query(req *types.QueryChangedDiskAreas) (*types.DiskChangeInfo, *soapFaultInfo) {
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return nil, &soapFaultInfo{
			fmt.Sprintf("managed object not found: %s", req.This),
			&types.ManagedObjectNotFound{Obj: req.This},
		}
	}
	st := readVM(vm, req.Snapshot)
	disks := st.live
	if req.Snapshot != nil {
		if !st.snapFound {
			return nil, invalidArgument("snapshot",
				fmt.Sprintf("%s is not a snapshot of %s", req.Snapshot.Value, req.This.Value))
		}
		disks = st.snapDisks
	}
	disk := findDisk(disks, req.DeviceKey)
	if disk == nil {
		name := fmt.Sprintf("%s device %d", req.This.Value, req.DeviceKey)
		return nil, &soapFaultInfo{
			fmt.Sprintf("no virtual disk with device key %d on %s", req.DeviceKey, req.This.Value),
			&types.FileNotFound{FileFault: types.FileFault{File: name}},
		}
	}
	if !st.cbtOn {
		ctk := strings.TrimSuffix(disk.file, ".vmdk") + "-ctk.vmdk"
		return nil, &soapFaultInfo{
			fmt.Sprintf("change tracking is not enabled on %s", req.This.Value),
			&types.FileFault{File: ctk},
		}
	}
	if req.StartOffset < 0 || req.StartOffset >= disk.capacity {
		return nil, invalidArgument("startOffset",
			fmt.Sprintf("startOffset %d is outside the disk (%d bytes)", req.StartOffset, disk.capacity))
	}
	liveCap := disk.capacity
	if live := findDisk(st.live, req.DeviceKey); live != nil {
		liveCap = live.capacity
	}

	ll, err := openLog(logPath(c.dir, req.This.Value, req.DeviceKey))
	if err != nil {
		log.Printf("change log: %s", err)
		return nil, &soapFaultInfo{err.Error(), &types.FileFault{File: disk.file}}
	}
	defer ll.close()
	if err := ll.ensureEpoch(liveCap); err != nil {
		return nil, &soapFaultInfo{err.Error(), &types.FileFault{File: disk.file}}
	}
	l := ll.log

	upto := l.last
	if req.Snapshot != nil {
		if seq, ok := l.snaps[req.Snapshot.Value]; ok {
			upto = seq
		}
	}
	since := int64(-1) // "*": every write
	if req.ChangeId != "*" {
		i := strings.LastIndexByte(req.ChangeId, '/')
		cur := l.current()
		seq, err := strconv.ParseInt(req.ChangeId[i+1:], 10, 64)
		if i < 0 || err != nil || changeID(cur.uuid, seq) != req.ChangeId {
			return nil, invalidArgument("changeId",
				fmt.Sprintf("changeId %q is not a change ID of this disk's current tracking", req.ChangeId))
		}
		if seq < cur.start || seq > upto {
			return nil, invalidArgument("changeId",
				fmt.Sprintf("changeId %q is outside this disk's tracked changes (%d..%d)", req.ChangeId, cur.start, upto))
		}
		since = seq
	}
	areas := changedAreas(l.writes, since, upto, req.StartOffset, disk.capacity)
	info := &types.DiskChangeInfo{StartOffset: req.StartOffset, Length: disk.capacity - req.StartOffset}
	if len(areas) > c.maxAreas {
		areas = areas[:c.maxAreas]
		last := areas[len(areas)-1]
		info.Length = last.Start + last.Length - req.StartOffset
	}
	info.ChangedArea = areas
	return info, nil
}

// changedAreas merges the writes with since < seq <= upto into sorted, disjoint areas clipped to
// [start, capacity).
func changedAreas(writes []write, since, upto, start, capacity int64) []types.DiskChangeExtent {
	type span struct{ a, b int64 }
	var spans []span
	for _, w := range writes {
		if w.seq <= since || w.seq > upto {
			continue
		}
		a, b := w.offset, w.offset+w.length
		if a < start {
			a = start
		}
		if b > capacity {
			b = capacity
		}
		if a < b {
			spans = append(spans, span{a, b})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].a < spans[j].a })
	var out []types.DiskChangeExtent
	for _, s := range spans {
		if n := len(out); n > 0 && s.a <= out[n-1].Start+out[n-1].Length {
			if end := s.b; end > out[n-1].Start+out[n-1].Length {
				out[n-1].Length = end - out[n-1].Start
			}
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: s.a, Length: s.b - s.a})
	}
	return out
}

// --- snapshots and reconfiguration ----------------------------------------------------------

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	t.buf.Write(b)
	return t.ResponseWriter.Write(b)
}

var taskRef = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// taskResult returns the result of the (synchronous, in vcsim) task a response named.
func taskResult(response []byte) (types.AnyType, bool) {
	m := taskRef.FindSubmatch(response)
	if m == nil {
		return nil, false
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(m[1])}).(*simulator.Task)
	if !ok {
		return nil, false
	}
	var res types.AnyType
	var success bool
	simulator.Map.WithLock(task, func() {
		success = task.Info.State == types.TaskInfoStateSuccess
		res = task.Info.Result
	})
	return res, success
}

// setChangeIDs sets backing.changeId of the disks in devices from ids (device key -> change ID).
// With copy set, the disks are replaced by copies first, so devices shared with the VM stay as
// they are.
func setChangeIDs(devices []types.BaseVirtualDevice, ids map[int32]string, copyDisks bool) {
	for i, dev := range devices {
		d, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		id, ok := ids[d.Key]
		if !ok {
			continue
		}
		if copyDisks {
			dc := *d
			switch b := d.Backing.(type) {
			case *types.VirtualDiskFlatVer2BackingInfo:
				bc := *b
				dc.Backing = &bc
			case *types.VirtualDiskSparseVer2BackingInfo:
				bc := *b
				dc.Backing = &bc
			case *types.VirtualDiskSeSparseBackingInfo:
				bc := *b
				dc.Backing = &bc
			}
			d = &dc
			devices[i] = d
		}
		switch b := d.Backing.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			b.ChangeId = id
		case *types.VirtualDiskSparseVer2BackingInfo:
			b.ChangeId = id
		case *types.VirtualDiskSeSparseBackingInfo:
			b.ChangeId = id
		}
	}
}

// points ensures each disk's log has a current epoch and returns its change ID "now".
func (c *cbt) points(vm string, disks []diskRef) (map[int32]string, map[int32]int64) {
	ids, seqs := map[int32]string{}, map[int32]int64{}
	for _, d := range disks {
		ll, err := openLog(logPath(c.dir, vm, d.key))
		if err != nil {
			log.Printf("change log: %s", err)
			continue
		}
		if err := ll.ensureEpoch(d.capacity); err != nil {
			log.Printf("change log: %s", err)
		} else {
			ids[d.key] = changeID(ll.log.current().uuid, ll.log.last)
			seqs[d.key] = ll.log.last
		}
		ll.close()
	}
	return ids, seqs
}

func (c *cbt) createSnapshot(w http.ResponseWriter, r *http.Request, next http.Handler, req *types.CreateSnapshot_Task) {
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	st := readVM(vm, nil)
	if !st.cbtOn {
		next.ServeHTTP(w, r)
		return
	}
	// The snapshot's point is fixed before vcsim takes it: a write logged while the snapshot is
	// being made counts as after it.
	ids, seqs := c.points(req.This.Value, st.live)
	tee := &teeWriter{ResponseWriter: w}
	next.ServeHTTP(tee, r)
	res, success := taskResult(tee.buf.Bytes())
	snapRef, isRef := res.(types.ManagedObjectReference)
	if !success || !isRef {
		return
	}
	for key, seq := range seqs {
		ll, err := openLog(logPath(c.dir, req.This.Value, key))
		if err != nil {
			log.Printf("change log: %s", err)
			continue
		}
		if err := ll.snapshot(seq, snapRef.Value); err != nil {
			log.Printf("change log: %s", err)
		}
		ll.close()
	}
	if snap, ok := simulator.Map.Get(snapRef).(*simulator.VirtualMachineSnapshot); ok {
		simulator.Map.WithLock(snap, func() {
			devices := append([]types.BaseVirtualDevice(nil), snap.Config.Hardware.Device...)
			setChangeIDs(devices, ids, true)
			snap.Config.Hardware.Device = devices
		})
	}
	simulator.Map.WithLock(vm, func() { setChangeIDs(vm.Config.Hardware.Device, ids, false) })
}

func (c *cbt) reconfigure(w http.ResponseWriter, r *http.Request, next http.Handler, req *types.ReconfigVM_Task) {
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok || req.Spec.ChangeTrackingEnabled == nil {
		next.ServeHTTP(w, r)
		return
	}
	before := readVM(vm, nil)
	next.ServeHTTP(w, r)
	after := readVM(vm, nil)
	switch {
	case before.cbtOn && !after.cbtOn:
		for _, d := range after.live {
			ll, err := openLog(logPath(c.dir, req.This.Value, d.key))
			if err != nil {
				log.Printf("change log: %s", err)
				continue
			}
			if err := ll.reset(d.capacity); err != nil {
				log.Printf("change log: %s", err)
			}
			ll.close()
		}
		ids := map[int32]string{}
		for _, d := range after.live {
			ids[d.key] = ""
		}
		simulator.Map.WithLock(vm, func() { setChangeIDs(vm.Config.Hardware.Device, ids, false) })
	case !before.cbtOn && after.cbtOn:
		c.enable(vm)
	}
}

// enable sets the live disks' change IDs of a VM whose change tracking is on.
func (c *cbt) enable(vm *simulator.VirtualMachine) {
	st := readVM(vm, nil)
	ids, _ := c.points(vm.Self.Value, st.live)
	simulator.Map.WithLock(vm, func() { setChangeIDs(vm.Config.Hardware.Device, ids, false) })
}

// --- SOAP answers ---------------------------------------------------------------------------

type soapFaultInfo struct {
	msg   string
	fault types.BaseMethodFault
}

// The envelope and fault shapes are those of simulator.Service.ServeSDK (unexported there).
type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct {
	Fault types.AnyType
}

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := fmt.Sprintf("%T", d.Fault)
	kind = kind[strings.LastIndexByte(kind, '.')+1:]
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:vim25"},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

type queryResponse struct {
	XMLName   xml.Name             `xml:"urn:vim25 QueryChangedDiskAreasResponse"`
	Returnval types.DiskChangeInfo `xml:"returnval"`
}

type renameResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 Rename_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

// writeSOAP answers a SOAP call with res (a *...Response) or, when fault is set, a SOAP fault.
func writeSOAP(w http.ResponseWriter, res interface{}, fault *soapFaultInfo) {
	env := soapEnvelope{
		Enc: "http://schemas.xmlsoap.org/soap/encoding/",
		Env: "http://schemas.xmlsoap.org/soap/envelope/",
		XSD: "http://www.w3.org/2001/XMLSchema",
		XSI: "http://www.w3.org/2001/XMLSchema-instance",
	}
	status := http.StatusOK
	if fault != nil {
		f := &soapFault{Code: "ServerFaultCode", String: fault.msg}
		f.Detail.Fault = &faultDetail{Fault: fault.fault}
		env.Body = struct{ Fault *soapFault }{f}
		status = http.StatusInternalServerError
	} else {
		env.Body = res
	}
	var out bytes.Buffer
	out.WriteString(xml.Header)
	if err := xml.NewEncoder(&out).Encode(&env); err != nil {
		log.Printf("encoding an answer: %s", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

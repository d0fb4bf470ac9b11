// The lab's change log: what the lab's guest writes changed on each VM disk, read here to answer
// QueryChangedDiskAreas (cbt.go) and written by core/lab/changelog.py (the Python twin of this
// file: keep both in step, the format is locked by tests/core/lab).
//
// Layout: <changelog_dir>/<vm moref>/<device key>.log, one append-only text file per VM disk.
// Every record is one line, fields separated by one space, ending in '\n':
//
//	replicadesk-cbt 1                  header, first line
//	E <uuid: 32 hex> <capacity bytes>  a tracking epoch starts (file creation, CBT reset, resize)
//	W <seq> <offset> <length>          a guest write of <length> bytes at <offset>
//	S <seq> <snapshot moref>           a snapshot was taken after write <seq> (0: before any)
//
// Write sequence numbers start at 1 and grow by one per W record over the file's whole life
// (epochs do not restart them). A changeId is "<epoch uuid as VMware prints it>/<seq>", e.g.
// "52 0b 6d 4c 11 2a 9e 31-7f 08 c4 d2 95 e6 3a 10/17": the disk's state after write 17 of that
// epoch. Writers hold an exclusive flock(2) on the file while they read its tail and append, so
// sequence numbers are never handed out twice; a line without its '\n' is ignored by readers.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const changelogHeader = "replicadesk-cbt 1"

type epoch struct {
	uuid     string // 32 lowercase hex digits
	capacity int64
	start    int64 // last write seq before this epoch began
}

type write struct {
	seq, offset, length int64
}

type diskLog struct {
	epochs []epoch
	writes []write
	snaps  map[string]int64
	last   int64
}

func (l *diskLog) current() *epoch {
	if len(l.epochs) == 0 {
		return nil
	}
	return &l.epochs[len(l.epochs)-1]
}

// changeID formats "<uuid>/<seq>" the way VMware prints change IDs.
func changeID(uuid string, seq int64) string {
	var b strings.Builder
	for i := 0; i < 16; i++ {
		if i == 8 {
			b.WriteByte('-')
		} else if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(uuid[2*i : 2*i+2])
	}
	return fmt.Sprintf("%s/%d", b.String(), seq)
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[0] = 0x52 // VMware's change IDs start with "52"
	return hex.EncodeToString(b[:])
}

func logPath(dir, vm string, key int32) string {
	return filepath.Join(dir, vm, fmt.Sprintf("%d.log", key))
}

// lockedLog is an open change log held under an exclusive flock.
type lockedLog struct {
	f   *os.File
	log *diskLog
}

func openLog(path string) (*lockedLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err == nil {
		var l *diskLog
		if l, err = parseLog(data); err == nil {
			return &lockedLog{f: f, log: l}, nil
		}
		err = fmt.Errorf("%s: %w", path, err)
	}
	_ = f.Close()
	return nil, err
}

func (ll *lockedLog) close() { _ = ll.f.Close() } // closing drops the flock

func (ll *lockedLog) appendLine(line string) error {
	if ll.log.epochs == nil && len(ll.log.writes) == 0 {
		if st, err := ll.f.Stat(); err == nil && st.Size() == 0 {
			line = changelogHeader + "\n" + line
		}
	}
	_, err := ll.f.WriteString(line + "\n")
	return err
}

// ensureEpoch starts a new epoch when there is none or the disk's capacity changed (VMware
// resets change tracking when a disk is resized: older change IDs become invalid).
func (ll *lockedLog) ensureEpoch(capacity int64) error {
	if cur := ll.log.current(); cur != nil && cur.capacity == capacity {
		return nil
	}
	return ll.reset(capacity)
}

func (ll *lockedLog) reset(capacity int64) error {
	e := epoch{uuid: newUUID(), capacity: capacity, start: ll.log.last}
	if err := ll.appendLine(fmt.Sprintf("E %s %d", e.uuid, e.capacity)); err != nil {
		return err
	}
	ll.log.epochs = append(ll.log.epochs, e)
	return nil
}

func (ll *lockedLog) snapshot(seq int64, moref string) error {
	if err := ll.appendLine(fmt.Sprintf("S %d %s", seq, moref)); err != nil {
		return err
	}
	ll.log.snaps[moref] = seq
	return nil
}

func parseLog(data []byte) (*diskLog, error) {
	l := &diskLog{snaps: map[string]int64{}}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			if line != changelogHeader {
				return nil, fmt.Errorf("not a change log (header %q)", line)
			}
			continue
		}
		f := strings.Split(line, " ")
		bad := func() (*diskLog, error) { return nil, fmt.Errorf("line %d: bad record %q", n, line) }
		nums := func(fields []string) ([]int64, bool) {
			out := make([]int64, len(fields))
			for i, s := range fields {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil || v < 0 {
					return nil, false
				}
				out[i] = v
			}
			return out, true
		}
		switch {
		case f[0] == "E" && len(f) == 3 && len(f[1]) == 32:
			v, ok := nums(f[2:])
			if !ok {
				return bad()
			}
			l.epochs = append(l.epochs, epoch{uuid: f[1], capacity: v[0], start: l.last})
		case f[0] == "W" && len(f) == 4:
			v, ok := nums(f[1:])
			if !ok || v[0] != l.last+1 {
				return bad()
			}
			l.writes = append(l.writes, write{seq: v[0], offset: v[1], length: v[2]})
			l.last = v[0]
		case f[0] == "S" && len(f) == 3:
			v, ok := nums(f[1:2])
			if !ok || v[0] > l.last {
				return bad()
			}
			l.snaps[f[2]] = v[0]
		default:
			return bad()
		}
	}
	return l, sc.Err()
}

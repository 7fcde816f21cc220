package system

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/owner"
)

// Two levels of snapshot, both content-addressed in one directory:
//
//   - base-KEY.vmstate: the guest with hil-init idle ("idle" on the report
//     port: kernel, modules, network and counters up, receive coalescing
//     off), before any app ran. KEY hashes everything QEMU starts with:
//     the initramfs (image manifest digest, init, kernel, interface name,
//     hostname, modules; no app arguments), the kernel command line, the
//     QEMU version, memory and CPUs. One per image and machine; any case
//     restores it and hil-init starts the app with the case's own
//     arguments, environment, working directory, user and receive offload
//     ("run").
//   - KEY.vmstate: the guest with the app ready (its ready line recorded in
//     the .json and replayed after a restore). KEY hashes the base key and
//     the run command: only a case with the same app arguments and
//     environment matches.
//
// A boot takes the app level when it matches, else the base level, else
// boots cold, and saves what was missing on the way (the base at idle, the
// app level at the ready line). VM.Info()["boot"] says which: cold,
// base or app.

// bootLevel is how a guest came up.
type bootLevel string

const (
	bootCold bootLevel = "cold"
	bootBase bootLevel = "base"
	bootApp  bootLevel = "app"
)

// snapshotPaths fills p's snapshot keys and paths; machine describes
// everything QEMU starts with.
func (t *Target) snapshotPaths(p *plan, machine string) error {
	dir := t.o.snapshotDir
	if dir == "" {
		var err error
		if dir, err = defaultSnapshotDir(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bh := sha256.Sum256([]byte("base\n" + machine))
	p.baseKey = hex.EncodeToString(bh[:])[:24]
	ah := sha256.Sum256(append([]byte("app\nbase="+p.baseKey+"\nrun="), p.run...))
	p.snapshotKey = hex.EncodeToString(ah[:])[:24]
	p.base = filepath.Join(dir, "base-"+p.baseKey+".vmstate")
	p.snapshot = filepath.Join(dir, p.snapshotKey+".vmstate")
	return nil
}

// snapshotMeta sits beside a snapshot file (FILE.json).
type snapshotMeta struct {
	Key     string    `json:"key"`
	Level   bootLevel `json:"level,omitempty"`
	Image   string    `json:"image"`
	Created time.Time `json:"created"`
	// Ready is the app's ready line (app level).
	Ready *target.Line `json:"ready,omitempty"`
	// Net is what hil-init reported of the capture interface before the
	// snapshot (app level: the restored guest does not report it again).
	Net target.Info `json:"net,omitempty"`
}

func readSnapshotMeta(path string) (*snapshotMeta, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (d *VM) qmp() (*qmp.SocketMonitor, error) {
	mon, err := qmp.NewSocketMonitor("unix", d.qmpPath, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to QMP at %s: %w", d.qmpPath, err)
	}
	if err := mon.Connect(); err != nil {
		return nil, fmt.Errorf("QMP handshake: %w", err)
	}
	return mon, nil
}

func qmpRun(mon *qmp.SocketMonitor, cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	out, err := mon.Run(b)
	if err != nil {
		return nil, fmt.Errorf("QMP %s: %w", cmd, err)
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	json.Unmarshal(out, &resp)
	return resp.Return, nil
}

// saveSnapshot stops the guest, migrates its state to path and lets it run
// on. The file appears under its final name only when complete, its
// metadata (meta) right after it.
func (d *VM) saveSnapshot(path string, meta snapshotMeta) (err error) {
	mon, err := d.qmp()
	if err != nil {
		return err
	}
	defer mon.Disconnect()
	if _, err := qmpRun(mon, "stop", nil); err != nil {
		return err
	}
	defer func() {
		if _, cerr := qmpRun(mon, "cont", nil); cerr != nil && err == nil {
			err = cerr
		}
	}()
	self := owner.Self()
	tmp := snapshotTemp(path, self)
	defer os.Remove(tmp)
	if _, err := qmpRun(mon, "migrate", map[string]any{"uri": "exec:cat > " + shellQuote(tmp)}); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		raw, err := qmpRun(mon, "query-migrate", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		json.Unmarshal(raw, &st)
		switch st.Status {
		case "completed":
			meta.Image, meta.Created = d.p.img.Ref+"@"+d.p.img.Digest.String(), time.Now()
			b, _ := json.MarshalIndent(meta, "", "  ")
			// Both under names of this process's own until complete (two
			// processes may save the same key at once: the same content,
			// and rename is atomic). The state file lands first: a reader
			// that finds it without its metadata yet boots without it.
			jtmp := snapshotTemp(path+".json", self)
			if err := os.WriteFile(jtmp, b, 0o644); err != nil {
				return err
			}
			defer os.Remove(jtmp)
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			if err := os.Rename(jtmp, path+".json"); err != nil {
				return err
			}
			// Over the cap, the least recently used snapshots that no
			// other process holds make room (snapcache.go).
			if err := d.t.capSnapshots(filepath.Dir(path)); err != nil {
				d.emit(target.Line{Stream: target.Console, Text: "hil: snapshot cache cap: " + err.Error(), Time: time.Now()})
			}
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration to %s %s: %s", tmp, st.Status, st.ErrorDesc)
		}
		if time.Now().After(deadline) {
			return errors.New("migration did not complete within 60 s")
		}
		if strings.TrimSpace(st.Status) == "" {
			return fmt.Errorf("unexpected query-migrate answer %s", raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resume waits for the incoming migration to finish loading, then starts
// the CPUs.
func (d *VM) resume(ctx context.Context) error {
	var mon *qmp.SocketMonitor
	var err error
	for {
		// QEMU creates the QMP socket shortly after it starts.
		if mon, err = d.qmp(); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-d.qemuDone:
			return errors.New("QEMU exited while loading the snapshot")
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer mon.Disconnect()
	for {
		raw, err := qmpRun(mon, "query-status", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
		}
		json.Unmarshal(raw, &st)
		switch st.Status {
		case "inmigrate":
		case "running":
			return nil
		case "paused", "postmigrate", "prelaunch":
			_, err := qmpRun(mon, "cont", nil)
			return err
		default:
			return fmt.Errorf("restored VM is in state %q", st.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

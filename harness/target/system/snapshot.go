package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/hilproject/hil/harness/target"
)

// snapshotMeta sits beside a snapshot file (FILE.json).
type snapshotMeta struct {
	Key     string       `json:"key"`
	Image   string       `json:"image"`
	Created time.Time    `json:"created"`
	Ready   *target.Line `json:"ready,omitempty"`
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

func (d *Device) qmp() (*qmp.SocketMonitor, error) {
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

// saveSnapshot stops the guest, migrates its state to a file and lets it
// run on. The file appears under its final name only when complete.
func (d *Device) saveSnapshot(ready target.Line) (err error) {
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
	tmp := fmt.Sprintf("%s.%d.tmp", d.p.snapshot, os.Getpid())
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
			meta := snapshotMeta{Key: d.p.snapshotKey, Image: d.p.img.Ref + "@" + d.p.img.Digest.String(), Created: time.Now(), Ready: &ready}
			b, _ := json.MarshalIndent(meta, "", "  ")
			if err := os.WriteFile(d.p.snapshot+".json.tmp", b, 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, d.p.snapshot); err != nil {
				return err
			}
			if err := os.Rename(d.p.snapshot+".json.tmp", d.p.snapshot+".json"); err != nil {
				return err
			}
			// Over the cap, the least recently used snapshots that no
			// other process holds make room (snapcache.go).
			if err := d.t.capSnapshots(filepath.Dir(d.p.snapshot)); err != nil {
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
func (d *Device) resume(ctx context.Context) error {
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

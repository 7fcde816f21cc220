package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/internal/imgrun"
)

var _ target.Liveness = (*VM)(nil)

var errNoAnswer = errors.New("no answer to QMP query-status")

// qmpMonitor is a connected go-qemu monitor. go-qemu's calls take no
// deadline and block while QEMU does not answer, which is exactly the
// case the liveness check must survive: every call runs in a goroutine
// and is given up on (and the connection closed, which ends the call) when
// its time is over.
type qmpMonitor struct{ mon *qmp.SocketMonitor }

// connectLive connects the liveness monitor, retrying until QEMU has
// created its socket.
func (d *VM) connectLive(ctx context.Context) error {
	var mon *qmp.SocketMonitor
	for {
		var err error
		if mon, err = qmp.NewSocketMonitor("unix", d.livePath, time.Second); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connecting to QMP at %s: %w (last: %v)", d.livePath, ctx.Err(), err)
		case <-d.qemuDone:
			return errors.New("QEMU exited before its liveness monitor answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	done := make(chan error, 1)
	go func() { done <- mon.Connect() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("QMP handshake on %s: %w", d.livePath, err)
		}
	case <-ctx.Done():
		// The handshake ends when Close kills QEMU; drop it then.
		go func() {
			if <-done == nil {
				mon.Disconnect()
			}
		}()
		return fmt.Errorf("QMP handshake on %s: %w", d.livePath, ctx.Err())
	}
	d.liveMu.Lock()
	defer d.liveMu.Unlock()
	select {
	case <-d.stop:
		mon.Disconnect()
		return errors.New("device closed")
	default:
	}
	d.liveMon = &qmpMonitor{mon: mon}
	return nil
}

func (d *VM) closeLive() {
	d.liveMu.Lock()
	defer d.liveMu.Unlock()
	if d.liveMon != nil {
		d.liveMon.mon.Disconnect()
		d.liveMon = nil
	}
}

// queryStatus asks QEMU for the VM's run state ("running", "paused", ...)
// within timeout. A QEMU that once failed to answer in time is not asked
// again: it is hung.
func (d *VM) queryStatus(ctx context.Context, timeout time.Duration) (string, error) {
	d.liveMu.Lock()
	m, hung := d.liveMon, d.liveHung
	d.liveMu.Unlock()
	if hung != nil {
		return "", hung
	}
	if m == nil {
		return "", errors.New("the liveness monitor is not connected")
	}
	type answer struct {
		raw json.RawMessage
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		raw, err := qmpRun(m.mon, "query-status", nil)
		ch <- answer{raw, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if a.err != nil {
			d.liveMu.Lock()
			hung := d.liveHung
			d.liveMu.Unlock()
			if hung != nil {
				return "", hung // another check gave up on QEMU meanwhile
			}
			return "", a.err
		}
		var st struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(a.raw, &st); err != nil || st.Status == "" {
			return "", fmt.Errorf("unexpected answer to query-status: %s", a.raw)
		}
		return st.Status, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		err := fmt.Errorf("%w within %s", errNoAnswer, timeout)
		d.liveMu.Lock()
		d.liveHung = err
		if d.liveMon != nil {
			d.liveMon.mon.Disconnect()
			d.liveMon = nil
		}
		d.liveMu.Unlock()
		return "", err
	}
}

// Alive reports whether the guest still runs the app (see the package
// doc): nil while it does and once the app's exit was seen, else a
// *target.DeadError saying what died and how.
func (d *VM) Alive(ctx context.Context) error {
	select {
	case <-d.exited:
		if d.exitErr == nil {
			return nil // the app's exit was seen: the device did its job
		}
		var de *target.DeadError
		if errors.As(d.exitErr, &de) {
			return de
		}
		return d.exitErr
	default:
	}
	select {
	case <-d.qemuDone:
		return d.qemuDeath()
	default:
	}
	if d.pausing.Load() > 0 {
		return nil // hil paused the VM itself, for the snapshot
	}
	timeout := d.t.o.liveTimeout
	gen := d.pauses.Load()
	status, err := d.queryStatus(ctx, timeout)
	if err != nil && ctx.Err() == nil && !errors.Is(err, errNoAnswer) {
		// The monitor's connection broke: QEMU is most likely exiting, and
		// how it ended is the better answer. Give its reaper a moment.
		select {
		case <-d.qemuDone:
		case <-time.After(timeout):
		case <-ctx.Done():
		}
	}
	select {
	case <-d.qemuDone:
		return d.qemuDeath()
	default:
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("checking whether the guest is alive: %w", ctx.Err())
		}
		how := "does not answer: " + err.Error()
		if st := imgrun.ProcState(d.cmd.Process.Pid); st != "" {
			how += "; its process is " + st
		}
		return target.Dead(d.emulatorName(), how)
	}
	if status != "running" && d.pausing.Load() == 0 && d.pauses.Load() == gen {
		return target.Dead(d.emulatorName(), fmt.Sprintf("no longer runs the guest: QMP query-status says %q", status))
	}
	if d.readBusy.Load() == 0 && d.pausing.Load() == 0 {
		if age := time.Since(time.Unix(0, d.lastSign.Load())); age > timeout {
			return &target.DeadError{
				What:   "the guest (hil-init, PID 1)",
				How:    fmt.Sprintf("gave no sign of life for %s (it beats every 200 ms; the limit is %s) while QEMU runs: the guest kernel or its init hangs", age.Round(time.Millisecond), timeout),
				Detail: "last console lines:\n" + d.consoleTail() + "\n(console log " + d.consolePath + ")",
			}
		}
	}
	return nil
}

func (d *VM) emulatorName() string {
	return fmt.Sprintf("the emulator %s (pid %d)", filepath.Base(d.p.qemu), d.cmd.Process.Pid)
}

// qemuDeath says how QEMU ended when it did before the app's exit was
// reported. Call it only once qemuDone is closed.
func (d *VM) qemuDeath() *target.DeadError {
	if pl := d.panic(); pl != "" {
		return &target.DeadError{What: "the guest kernel", How: "panicked: " + pl, Detail: "console log " + d.consolePath}
	}
	how := target.HowEnded(d.cmd.ProcessState)
	if ps := d.cmd.ProcessState; ps != nil && ps.Exited() && ps.ExitCode() == 0 {
		how = "exited with status 0: the guest powered off or rebooted before hil-init reported the app's exit"
	}
	return &target.DeadError{What: d.emulatorName(), How: how,
		Detail: "last console lines:\n" + d.consoleTail() + "\n(console log " + d.consolePath + ")"}
}

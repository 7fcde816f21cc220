package harness

import (
	"context"
	"sync"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/harness/scenario"
)

// Replayer is hil's replay engine (harness/replay) as the runner's
// Replayer. Each fixture is scanned once per process; every replay streams
// it from disk (the page cache, for the few files a suite replays into
// many boots), so a capture of any size needs no more memory than a small
// one. A fixture that changed after its scan is refused.
func Replayer() scenario.Replayer { return &replayer{scanned: map[string]*replay.File{}} }

type replayer struct {
	mu      sync.Mutex
	scanned map[string]*replay.File
}

func (r *replayer) capture(path string) (*replay.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.scanned[path]; ok {
		return c, nil
	}
	c, err := replay.Open(path)
	if err != nil {
		return nil, err
	}
	r.scanned[path] = c
	return c, nil
}

func (r *replayer) Replay(ctx context.Context, l link.Link, rp *scenario.Replay) (scenario.ReplayStats, error) {
	c, err := r.capture(rp.Path)
	if err != nil {
		return scenario.ReplayStats{}, err
	}
	st, err := replay.Send(ctx, l, c, replay.WithSchedule(rp.Schedule), replay.WithLoops(rp.Loops))
	if d, ok := l.(link.Drainer); ok && err == nil {
		// The step ends when the device has the frames, not when they sit
		// in a socket buffer: the next step judges what the app made of them.
		err = d.Drain(ctx)
	}
	return scenario.ReplayStats{
		FramesSent:  int64(st.Frames),
		BytesSent:   st.Bytes,
		Skipped:     int64(st.Skipped),
		Elapsed:     st.Duration,
		PPS:         st.PPS,
		GapErrorP50: st.GapErrP50,
		GapErrorP99: st.GapErrP99,
		GapErrorMax: st.GapErrMax,
	}, err
}

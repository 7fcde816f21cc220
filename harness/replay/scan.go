package replay

import (
	"fmt"
	"io"
	"os"
	"time"
)

// Summary is what a scan of a capture found: every record header checked,
// no frame held.
type Summary struct {
	Path     string
	Format   string // "pcap" or "pcapng"
	Records  int    // records in the file
	Frames   int    // records the filter kept (all of them without a filter)
	Filtered int    // records the filter left out
	Bytes    int64  // bytes of the kept frames
	// Span is the offset of the last kept frame from the first record's
	// timestamp: how long the capture plays as captured.
	Span time.Duration
	// Largest is the longest kept frame, in bytes: a replay compares it
	// with the link's MTU.
	Largest int
}

// Scan reads every record header of the capture at path and checks it,
// holding no frame (with a filter, each frame is read once to match it):
// the check a fixture gets when a scenario is loaded, in memory that does
// not grow with the capture.
func Scan(path string, opts ...Option) (Summary, error) {
	f, err := Open(path, opts...)
	if err != nil {
		return Summary{}, err
	}
	return f.Summary, nil
}

// ScanReader is Scan for an io.Reader (Path stays empty).
func ScanReader(r io.Reader, opts ...Option) (Summary, error) {
	match, err := compileIf(newConfig(opts).filter)
	if err != nil {
		return Summary{}, err
	}
	return summarize(r, match)
}

// File is a scanned capture file that Send streams from disk: frames are
// read ahead in a bounded window while earlier ones go out, and every
// loop reads the file again. It remembers the file's size and modification
// time and refuses to play a file that changed after the scan.
type File struct {
	Summary
	match   func([]byte) bool
	size    int64
	modTime time.Time
}

// Open scans the capture file at path (see Scan) for Send or Run. The
// filter (WithFilter) belongs to the scan: it decides which frames the
// File plays (Send's own options do not change that), as with Load.
func Open(path string, opts ...Option) (*File, error) {
	match, err := compileIf(newConfig(opts).filter)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	f := &File{match: match, size: st.Size(), modTime: st.ModTime()}
	if f.Summary, err = summarize(fh, match); err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

func compileIf(expr string) (func([]byte) bool, error) {
	if expr == "" {
		return nil, nil
	}
	return compileFilter(expr)
}

// summarize walks the records of r.
func summarize(r io.Reader, match func([]byte) bool) (Summary, error) {
	s, _, _, err := summarizeOver(r, match, 0, false)
	return s, err
}

// oversize is the first frame over a limit.
type oversize struct{ record, size int }

// summarizeOver walks the records of r. With limit > 0 the frames longer
// than limit are left out of Frames, Bytes, Span and Largest and counted in
// over (the first one's record and size in first); stopAtOver ends the walk
// at the first one.
func summarizeOver(r io.Reader, match func([]byte) bool, limit int, stopAtOver bool) (Summary, int, *oversize, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Summary{}, 0, nil, err
	}
	s := Summary{Format: rd.Format()}
	var buf []byte
	over := 0
	var firstOver *oversize
	var offs offsets
	var p Packet
	for {
		b, err := rd.appendNext(&p, buf[:0], match != nil)
		buf = b
		if err == io.EOF {
			break
		}
		if err != nil {
			return Summary{}, 0, nil, err
		}
		s.Records++
		if match != nil && !match(p.Data) {
			offs.skip(&p)
			s.Filtered++
			continue
		}
		off := offs.next(&p)
		if limit > 0 && p.size > limit {
			over++
			if firstOver == nil {
				firstOver = &oversize{p.Index, p.size}
			}
			if stopAtOver {
				break
			}
			continue
		}
		s.Frames++
		s.Bytes += int64(p.size)
		s.Span = off
		s.Largest = max(s.Largest, p.size)
	}
	return s, over, firstOver, nil
}

// reopen opens the file again for a loop or a limit scan, refusing one
// that changed since the scan: its frames would not be the ones counted.
func (f *File) reopen() (*os.File, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("replay: %w", err)
	}
	if st.Size() != f.size || !st.ModTime().Equal(f.modTime) {
		fh.Close()
		return nil, fmt.Errorf("replay %s: the file changed after it was scanned (size %d, modified %s; scanned: size %d, modified %s): scan it again",
			f.Path, st.Size(), st.ModTime().Format(time.RFC3339Nano), f.size, f.modTime.Format(time.RFC3339Nano))
	}
	return fh, nil
}

// offsets computes frames' offsets from the first record's timestamp,
// never going backwards: captures are not always in order (pcapng with
// several interfaces, merged files), and a replay never schedules
// backwards. Load, the scan and the stream share it so that all three
// agree on every frame's time.
type offsets struct {
	first   time.Time
	prev    time.Duration
	started bool
}

// skip notes a record that is not a frame of the replay (filtered out):
// only its timestamp may matter, as the first record's.
func (o *offsets) skip(p *Packet) {
	if !o.started {
		o.first, o.started = p.Time, true
	}
}

// next is the offset of a frame of the replay.
func (o *offsets) next(p *Packet) time.Duration {
	o.skip(p)
	off := max(p.Time.Sub(o.first), o.prev)
	o.prev = off
	return off
}

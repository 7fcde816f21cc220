package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// Summary is what Scan learned of a capture file.
type Summary struct {
	Format  string // "pcap" or "pcapng"
	Records int
	// Span is the last record's offset from the first as a replay
	// schedules it (out-of-order timestamps never go backwards).
	Span   time.Duration
	SHA256 string // of the whole file
}

// Scan reads every record of the capture at path with the replay's own
// reader and checks it as Load does (format, Ethernet link type, record
// bounds), without keeping the frames: a scenario loader uses it to refuse
// a bad fixture before anything boots. A problem in the file is a
// *FormatError (record index and byte offset) wrapped with the path.
func Scan(path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, err
	}
	defer f.Close()
	s, err := ScanReader(f)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ScanReader is Scan for an io.Reader.
func ScanReader(r io.Reader) (Summary, error) {
	h := sha256.New()
	tee := io.TeeReader(r, h)
	rd, err := NewReader(tee)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Format: rd.Format()}
	var first time.Time
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
		if s.Records == 0 {
			first = p.Time
		}
		s.Records++
		if off := p.Time.Sub(first); off > s.Span {
			s.Span = off
		}
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return s, err
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

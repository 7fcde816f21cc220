// Package manifest is the schema of pcapfixtures/manifest.json (the
// generated fixtures) and recorded.json (the fixtures recorded from real
// traffic), shared by both generators and the pcapfixtures package.
package manifest

// Manifest lists every fixture.
type Manifest struct {
	Comment  string    `json:"comment,omitempty"`
	Fixtures []Fixture `json:"fixtures"`
}

// Fixture describes one capture file.
type Fixture struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Description string `json:"description"`
	Format      string `json:"format"`    // "pcap" or "pcapng"
	LinkType    string `json:"link_type"` // libpcap name, "EN10MB"
	LinkTypeID  int    `json:"link_type_id"`
	Interfaces  int    `json:"interfaces,omitempty"` // pcapng only
	Resolution  string `json:"timestamp_resolution"` // "us" or "ns"
	Frames      int    `json:"frames"`
	Bytes       int64  `json:"bytes"` // sum of captured frame lengths
	// OversizeFrames is how many frames exceed a 1500-byte MTU (more than
	// 1514 bytes with the Ethernet header): replay skips them by default.
	OversizeFrames int    `json:"oversize_frames"`
	DurationNS     int64  `json:"duration_ns"` // last timestamp minus first
	Size           int64  `json:"size"`        // file size
	SHA256         string `json:"sha256"`
	Notes          string `json:"notes,omitempty"`
	Expect         Expect `json:"expect"`
	// Recorded says how a fixture captured from real traffic was made; nil
	// for the generated ones. Recorded fixtures are listed in
	// recorded.json, not manifest.json, and are not reproducible byte for
	// byte (timestamps, sequence numbers, keys differ on every run).
	Recorded *Recording `json:"recorded,omitempty"`
}

// Recording is the provenance of a recorded fixture.
type Recording struct {
	// Traffic is what made the frames: which real programs, where.
	Traffic string `json:"traffic"`
	// Capture is where and with what the frames were captured.
	Capture string `json:"capture"`
	// Command re-records the fixture.
	Command string `json:"command"`
	// Kernel is the release of the kernel whose stacks made the traffic.
	Kernel string `json:"kernel"`
	// Date is when it was recorded (YYYY-MM-DD, UTC).
	Date string `json:"date"`
}

// Expect is what pcapwatch should report after the fixture was replayed
// into its interface at MTU 1500.
type Expect struct {
	// FramesSeen is the frame count pcapwatch's summary should show (the
	// frames that fit the MTU).
	FramesSeen int `json:"frames_seen"`
	// Exact: the app must emit exactly these events, no others.
	Exact bool `json:"exact"`
	// MustNotCrash: the fixture is hostile; the app must keep running.
	MustNotCrash bool          `json:"must_not_crash,omitempty"`
	DeviceSeen   []DeviceSeen  `json:"device_seen"`
	DHCPRequest  []DHCPRequest `json:"dhcp_request"`
	DNSQuery     []DNSQuery    `json:"dns_query"`
}

// DeviceSeen is a new (MAC, IP) pair from an ARP sender.
type DeviceSeen struct {
	MAC string `json:"mac"`
	IP  string `json:"ip"`
}

// DHCPRequest is a DHCPREQUEST's client MAC and hostname option.
type DHCPRequest struct {
	MAC      string `json:"mac"`
	Hostname string `json:"hostname"`
}

// DNSQuery is one DNS question: name and type ("A", "AAAA", "PTR").
type DNSQuery struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

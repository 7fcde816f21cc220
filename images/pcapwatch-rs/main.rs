//! pcapwatch-rs is the Rust twin of images/pcapwatch, built the way an IoT
//! team builds its Rust app: Debian's rustc, the armhf standard library,
//! libpcap through a hand-written FFI (no crates), linked dynamically, the
//! binary copied onto a Debian runtime. Same flags, same output:
//!
//!   ready iface=eth0                     once the capture is active
//!   {"event":"device_seen","mac":"02:00:00:00:00:01","ip":"192.168.1.10"}
//!   {"event":"dhcp_request","mac":"02:00:00:00:00:02","hostname":"sensor-1"}
//!   {"event":"dns_query","name":"example.com","type":"A","src":"192.168.1.10"}
//!   {"event":"summary","frames":N,"counts":{...},"pcap_received":R,"pcap_dropped":D,"pcap_if_dropped":I}
//!
//! The summary is printed on SIGTERM or SIGINT, then the exit status is 0.
//! Capture errors go to stderr with exit status 2.

mod decode;
mod flags;
mod out;
mod pcap;

use std::collections::HashSet;
use std::os::raw::c_int;
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use decode::Event;

const EXIT_CAPTURE_ERROR: i32 = 2;
const POLL_TIMEOUT_MS: i32 = 100;
/// How long frames queued before SIGTERM are still read before the summary
/// (a full 32 MiB ring takes well under that).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// The `late-crash` variant's fault, baked in at compile time (the image
/// builder sets it in rustc's environment), as it would be in a bad
/// release: seconds after ready at which the periodic housekeeping runs,
/// and crashes. Unset in the good build.
const HOUSEKEEPING_FAULT_AFTER: Option<&str> = option_env!("PCAPWATCH_RS_HOUSEKEEPING_FAULT_AFTER");

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" {
    // glibc's signal(2) wrapper (BSD semantics); handlers are plain
    // addresses, SIG_DFL is 0.
    fn signal(signum: c_int, handler: usize) -> usize;
}

const SIGINT: c_int = 2;
const SIGPIPE: c_int = 13;
const SIGTERM: c_int = 15;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prog = args.first().cloned().unwrap_or_else(|| "pcapwatch-rs".to_string());
    let opts = flags::parse(&prog, &args[1..]);

    unsafe {
        signal(SIGTERM, on_stop_signal as extern "C" fn(c_int) as usize);
        signal(SIGINT, on_stop_signal as extern "C" fn(c_int) as usize);
        // Rust ignores SIGPIPE; the Go app dies of it when stdout goes
        // away, and so does this one.
        signal(SIGPIPE, 0);
    }

    let mut w = Watcher::new();
    // In immediate mode libpcap uses a TPACKET_V2 ring of fixed-size slots
    // sized by the snaplen; see the Go app for why 1024 is the default.
    let mut cap = match pcap::Capture::open(
        &opts.iface,
        &pcap::Options {
            snaplen: opts.snaplen as i32,
            promisc: true,
            immediate: true,
            buffer_bytes: (opts.buffer_mib << 20) as i32,
            timeout_ms: POLL_TIMEOUT_MS,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcapwatch-rs: capture on {}: {}", opts.iface, e);
            exit(EXIT_CAPTURE_ERROR);
        }
    };
    out::line(&format!("ready iface={}", opts.iface));
    let ready_at = Instant::now();
    let fault_after = HOUSEKEEPING_FAULT_AFTER.and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);

    // After a signal, the frames the kernel had already queued are still
    // read (a test that replays a burst then stops the app wants them all
    // counted), but nothing that arrives later: traffic that never pauses
    // must not keep us from stopping.
    let mut stopping = false;
    let mut drain_to: i64 = 0;
    let mut stop_by = Instant::now();
    loop {
        if stopping && (w.frames >= drain_to || Instant::now() > stop_by) {
            break;
        }
        match cap.next() {
            Ok(pcap::Next::Frame(data)) => w.frame(data),
            Ok(pcap::Next::Timeout) => {
                if stopping {
                    break; // the ring is empty
                }
            }
            Err(e) => {
                eprintln!("pcapwatch-rs: reading from {}: {}", opts.iface, e);
                exit(EXIT_CAPTURE_ERROR);
            }
        }
        if stopping {
            continue;
        }
        if STOP.load(Ordering::SeqCst) {
            stopping = true;
            stop_by = Instant::now() + DRAIN_LIMIT;
            if let Some(st) = cap.stats() {
                // Linux counts dropped frames as received too.
                drain_to = st.received as i64 - st.dropped as i64;
            }
            continue;
        }
        if let Some(d) = fault_after {
            if ready_at.elapsed() >= d {
                w.housekeeping();
            }
        }
    }
    let st = cap.stats();
    w.summary(st);
    drop(cap);
}

/// Decodes frames and turns them into events.
struct Watcher {
    frames: i64,
    counts: [u64; 3], // device_seen, dhcp_request, dns_query
    seen: HashSet<String>, // "mac ip" pairs already reported
    minutes: Vec<u64>,
}

impl Watcher {
    fn new() -> Watcher {
        Watcher { frames: 0, counts: [0; 3], seen: HashSet::new(), minutes: Vec::new() }
    }

    fn frame(&mut self, data: &[u8]) {
        self.frames += 1;
        // Malformed frames are counted but otherwise ignored: a capture app
        // must survive whatever the wire carries.
        let mut events = Vec::new();
        decode::frame(data, &mut |e| events.push(e));
        for e in events {
            self.event(e);
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Arp { mac, ip } => {
                if ip == [0, 0, 0, 0] {
                    return; // ARP probes announce no address yet
                }
                let (mac, ip) = (out::mac(&mac), out::ip(&ip));
                if !self.seen.insert(format!("{} {}", mac, ip)) {
                    return;
                }
                self.counts[0] += 1;
                out::line(&format!(
                    r#"{{"event":"device_seen","mac":{},"ip":{}}}"#,
                    out::json_str(mac.as_bytes()),
                    out::json_str(ip.as_bytes())
                ));
            }
            Event::Dhcp { op, msg_type, chaddr, hostname } => {
                // BOOTREQUEST carrying a DHCPREQUEST (DISCOVERs are not requests).
                if op != 1 || msg_type != 3 {
                    return;
                }
                self.counts[1] += 1;
                out::line(&format!(
                    r#"{{"event":"dhcp_request","mac":{},"hostname":{}}}"#,
                    out::json_str(out::mac(&chaddr).as_bytes()),
                    out::json_str(&hostname)
                ));
            }
            Event::Dns { qr, opcode, questions, src } => {
                if qr || opcode != 0 {
                    return;
                }
                for (name, typ) in questions {
                    self.counts[2] += 1;
                    let mut l = format!(
                        r#"{{"event":"dns_query","name":{},"type":{}"#,
                        out::json_str(&name),
                        out::json_str(dns_type(typ).as_bytes())
                    );
                    if let Some(s) = &src {
                        l.push_str(&format!(r#","src":{}"#, out::json_str(out::ip(s).as_bytes())));
                    }
                    l.push('}');
                    out::line(&l);
                }
            }
        }
    }

    /// The periodic housekeeping of the late-crash build: it folds the
    /// per-minute counters, and indexes a table that is still empty. Only
    /// a build with HOUSEKEEPING_FAULT_AFTER ever calls it.
    fn housekeeping(&mut self) {
        let elapsed_minutes = self.minutes.len();
        let last = self.minutes[elapsed_minutes];
        self.minutes.push(last);
    }

    fn summary(&self, st: Option<pcap::Stats>) {
        let (r, d, i) = match st {
            Some(s) => (s.received, s.dropped, s.if_dropped),
            None => (0, 0, 0),
        };
        out::line(&format!(
            r#"{{"event":"summary","frames":{},"counts":{{"device_seen":{},"dhcp_request":{},"dns_query":{}}},"pcap_received":{},"pcap_dropped":{},"pcap_if_dropped":{}}}"#,
            self.frames, self.counts[0], self.counts[1], self.counts[2], r, d, i
        ));
    }
}

/// gopacket's DNSType names.
fn dns_type(t: u16) -> &'static str {
    match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        256 => "URI",
        _ => "Unknown",
    }
}

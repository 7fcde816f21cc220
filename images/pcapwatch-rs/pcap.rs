//! The few libpcap calls pcapwatch-rs makes, declared by hand: the build
//! has no crates.io, and a dozen prototypes from pcap/pcap.h are all it
//! takes. Linking is dynamic (`-l pcap` → DT_NEEDED libpcap.so.0.8), like
//! the C and Go apps this one stands beside.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_long, c_short, c_uint, c_ulong};

#[repr(C)]
struct PcapT {
    _opaque: [u8; 0],
}

/// struct pcap_pkthdr: a struct timeval, then caplen and len. time_t and
/// suseconds_t are `long` on both targets (Debian bookworm armhf still has
/// a 32-bit time_t).
#[repr(C)]
struct PktHdr {
    ts_sec: c_long,
    ts_usec: c_long,
    caplen: u32,
    len: u32,
}

/// struct pcap_stat as Linux libpcap fills it (no ps_capt outside Windows).
#[repr(C)]
#[derive(Default)]
struct PcapStat {
    ps_recv: c_uint,
    ps_drop: c_uint,
    ps_ifdrop: c_uint,
}

const PCAP_ERRBUF_SIZE: usize = 256;
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);
const PCAP_ERROR: c_int = -1;
const PCAP_ERROR_ACTIVATED: c_int = -4;
const PCAP_ERROR_NO_SUCH_DEVICE: c_int = -5;
const PCAP_ERROR_PERM_DENIED: c_int = -8;
const PCAP_ERROR_IFACE_NOT_UP: c_int = -9;
const PCAP_WARNING: c_int = 1;
const PCAP_WARNING_PROMISC_NOTSUP: c_int = 2;
const PCAP_TSTAMP_PRECISION_NANO: c_int = 1;

#[link(name = "pcap")]
extern "C" {
    fn pcap_create(source: *const c_char, errbuf: *mut c_char) -> *mut PcapT;
    fn pcap_set_snaplen(p: *mut PcapT, snaplen: c_int) -> c_int;
    fn pcap_set_promisc(p: *mut PcapT, promisc: c_int) -> c_int;
    fn pcap_set_immediate_mode(p: *mut PcapT, immediate: c_int) -> c_int;
    fn pcap_set_buffer_size(p: *mut PcapT, size: c_int) -> c_int;
    fn pcap_set_timeout(p: *mut PcapT, ms: c_int) -> c_int;
    fn pcap_set_tstamp_precision(p: *mut PcapT, precision: c_int) -> c_int;
    fn pcap_activate(p: *mut PcapT) -> c_int;
    fn pcap_geterr(p: *mut PcapT) -> *const c_char;
    fn pcap_statustostr(status: c_int) -> *const c_char;
    fn pcap_next_ex(p: *mut PcapT, hdr: *mut *mut PktHdr, data: *mut *const u8) -> c_int;
    fn pcap_stats(p: *mut PcapT, st: *mut PcapStat) -> c_int;
    fn pcap_close(p: *mut PcapT);
    fn pcap_setnonblock(p: *mut PcapT, nonblock: c_int, errbuf: *mut c_char) -> c_int;
    fn pcap_get_selectable_fd(p: *mut PcapT) -> c_int;
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

const POLLIN: c_short = 1;

extern "C" {
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
}

/// Capture statistics, as pcap_stats reports them.
pub struct Stats {
    pub received: u32,
    pub dropped: u32,
    pub if_dropped: u32,
}

/// What one read returned.
pub enum Next<'a> {
    Frame(&'a [u8]),
    Timeout,
}

/// An activated live capture; closed on drop.
pub struct Capture {
    p: *mut PcapT,
    timeout_ms: c_int,
}

/// Settings of a live capture (pcap_set_* before pcap_activate).
pub struct Options {
    pub snaplen: i32,
    pub promisc: bool,
    pub immediate: bool,
    pub buffer_bytes: i32,
    pub timeout_ms: i32,
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn status_text(status: c_int) -> String {
    cstr(unsafe { pcap_statustostr(status) })
}

impl Capture {
    /// Opens iface the way gopacket's NewInactiveHandle + Activate do, with
    /// the same error texts, so both apps say the same thing on a bad
    /// interface. Like gopacket, a warning from pcap_activate is an error.
    pub fn open(iface: &str, o: &Options) -> Result<Capture, String> {
        let dev = CString::new(iface).map_err(|_| "interface name contains a NUL byte".to_string())?;
        let mut errbuf = [0 as c_char; PCAP_ERRBUF_SIZE];
        let p = unsafe { pcap_create(dev.as_ptr(), errbuf.as_mut_ptr()) };
        if p.is_null() {
            return Err(cstr(errbuf.as_ptr()));
        }
        // Owned from here: every early return closes it.
        let cap = Capture { p, timeout_ms: o.timeout_ms };
        let sets: [(c_int, &dyn Fn(*mut PcapT, c_int) -> c_int); 5] = [
            (o.snaplen, &|p, v| unsafe { pcap_set_snaplen(p, v) }),
            (o.promisc as c_int, &|p, v| unsafe { pcap_set_promisc(p, v) }),
            // Immediate mode hands each frame over at once; the large
            // buffer absorbs bursts while we print.
            (o.immediate as c_int, &|p, v| unsafe { pcap_set_immediate_mode(p, v) }),
            (o.buffer_bytes, &|p, v| unsafe { pcap_set_buffer_size(p, v) }),
            (o.timeout_ms, &|p, v| unsafe { pcap_set_timeout(p, v) }),
        ];
        for (v, set) in sets.iter() {
            let st = set(cap.p, *v);
            if st < 0 {
                return Err(status_text(st));
            }
        }
        // Ignored, as gopacket ignores it: the precision is not printed.
        unsafe { pcap_set_tstamp_precision(cap.p, PCAP_TSTAMP_PRECISION_NANO) };
        let st = unsafe { pcap_activate(cap.p) };
        if st != 0 {
            return Err(match st {
                PCAP_ERROR_ACTIVATED => "Already Activated".to_string(),
                PCAP_WARNING_PROMISC_NOTSUP => "Cannot set as promisc".to_string(),
                PCAP_ERROR_NO_SUCH_DEVICE => "No Such Device".to_string(),
                PCAP_ERROR_PERM_DENIED => "Permission Denied".to_string(),
                PCAP_ERROR_IFACE_NOT_UP => "Interface Not Up".to_string(),
                PCAP_WARNING => format!("Warning: {}", cap.geterr()),
                PCAP_ERROR => format!("Error: {}", cap.geterr()),
                other => format!("unknown activated error: {}", other),
            });
        }
        // Like gopacket: non-blocking reads and a poll of our own with the
        // timeout. libpcap 1.10's blocking read on the mmap ring polls
        // again after a timeout or a signal instead of returning, so it
        // would never let a SIGTERM through while the wire is quiet.
        if o.timeout_ms > 0 {
            let mut errbuf = [0 as c_char; PCAP_ERRBUF_SIZE];
            if unsafe { pcap_setnonblock(cap.p, 1, errbuf.as_mut_ptr()) } < -1 {
                return Err(cstr(errbuf.as_ptr()));
            }
        }
        Ok(cap)
    }

    fn geterr(&self) -> String {
        cstr(unsafe { pcap_geterr(self.p) })
    }

    /// Reads the next frame, or says the read timeout expired. The frame
    /// borrows libpcap's ring until the next call.
    /// As gopacket reads: try, wait up to the timeout for the capture fd
    /// to become readable (a signal ends the wait early), try once more.
    pub fn next(&mut self) -> Result<Next<'_>, String> {
        let mut hdr: *mut PktHdr = std::ptr::null_mut();
        let mut data: *const u8 = std::ptr::null();
        let mut waited = false;
        loop {
            match unsafe { pcap_next_ex(self.p, &mut hdr, &mut data) } {
                1 => {
                    let caplen = unsafe { (*hdr).caplen } as usize;
                    if data.is_null() || caplen == 0 {
                        return Ok(Next::Frame(&[]));
                    }
                    return Ok(Next::Frame(unsafe { std::slice::from_raw_parts(data, caplen) }));
                }
                0 => {
                    if waited && self.timeout_ms > 0 {
                        return Ok(Next::Timeout);
                    }
                    self.wait();
                    waited = true;
                }
                -2 => return Err("EOF".to_string()),
                // gopacket's NextErrorReadError text.
                _ => return Err("Read Error".to_string()),
            }
        }
    }

    fn wait(&mut self) {
        let fd = unsafe { pcap_get_selectable_fd(self.p) };
        if fd < 0 {
            return;
        }
        // Let a burst gather for a millisecond before sleeping in poll.
        // This app empties the ring faster than frames come in, so without
        // the pause every frame of a burst wakes it: on an emulated board
        // (qemu-system-arm, TCG) those wakeups took so much of the guest's
        // CPU that the kernel was seconds late putting the burst-100k
        // fixture into the ring (4 of 9 runs short of 100,000 frames 3 s
        // after the replay; 10 of 10 complete with the pause). An event is
        // at most 1 ms later for it.
        std::thread::sleep(COALESCE);
        let mut pfd = PollFd { fd, events: POLLIN, revents: 0 };
        let ms = if self.timeout_ms != 0 { self.timeout_ms } else { -1 };
        unsafe { poll(&mut pfd, 1, ms) };
    }

    pub fn stats(&mut self) -> Option<Stats> {
        let mut st = PcapStat::default();
        if unsafe { pcap_stats(self.p, &mut st) } != 0 {
            return None;
        }
        Some(Stats { received: st.ps_recv, dropped: st.ps_drop, if_dropped: st.ps_ifdrop })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        unsafe { pcap_close(self.p) }
    }
}

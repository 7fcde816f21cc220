//! Output lines byte for byte as the Go pcapwatch writes them: Go's
//! encoding/json string escaping (HTML-safe, invalid UTF-8 as U+FFFD per
//! byte), net.IP and net.HardwareAddr text forms, and one write(2) per line.

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::unix::io::FromRawFd;

/// Writes whole lines to fd 1 with one write each (no buffering in
/// between), so a pipe or a serial console sees every line at once.
pub fn line(s: &str) {
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let mut b = Vec::with_capacity(s.len() + 1);
    b.extend_from_slice(s.as_bytes());
    b.push(b'\n');
    // Like the Go app, a failed write is not an error worth dying for.
    let _ = out.write_all(&b);
}

/// A JSON string as Go's json.Marshal writes it.
pub fn json_str(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut o = String::with_capacity(b.len() + 2);
    o.push('"');
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            match c {
                b'"' => o.push_str("\\\""),
                b'\\' => o.push_str("\\\\"),
                b'\n' => o.push_str("\\n"),
                b'\r' => o.push_str("\\r"),
                b'\t' => o.push_str("\\t"),
                0x08 => o.push_str("\\b"),
                0x0c => o.push_str("\\f"),
                b'<' | b'>' | b'&' | 0x00..=0x1f => {
                    o.push_str("\\u00");
                    o.push(HEX[(c >> 4) as usize] as char);
                    o.push(HEX[(c & 0xf) as usize] as char);
                }
                _ => o.push(c as char),
            }
            i += 1;
            continue;
        }
        // Go decodes one rune at a time; an invalid or truncated sequence
        // is one U+FFFD per byte it consumes, which is one byte.
        match std::str::from_utf8(&b[i..]) {
            Ok(rest) => {
                let ch = rest.chars().next().unwrap();
                push_rune(&mut o, ch);
                i += ch.len_utf8();
            }
            Err(e) if e.valid_up_to() > 0 => {
                let ok = std::str::from_utf8(&b[i..i + e.valid_up_to()]).unwrap();
                let ch = ok.chars().next().unwrap();
                push_rune(&mut o, ch);
                i += ch.len_utf8();
            }
            Err(_) => {
                o.push_str("\\ufffd");
                i += 1;
            }
        }
    }
    o.push('"');
    o
}

fn push_rune(o: &mut String, ch: char) {
    match ch {
        '\u{2028}' => o.push_str("\\u2028"),
        '\u{2029}' => o.push_str("\\u2029"),
        _ => o.push(ch),
    }
}

/// net.HardwareAddr.String(): lower-case hex bytes joined by colons.
pub fn mac(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(|x| format!("{:02x}", x)).collect();
    parts.join(":")
}

/// net.IP.String() for 4- and 16-byte addresses: dotted quad for IPv4 and
/// IPv4-mapped IPv6, else RFC 5952 (the first longest run of two or more
/// zero groups becomes "::").
pub fn ip(b: &[u8]) -> String {
    let v4 = match b.len() {
        4 => Some([b[0], b[1], b[2], b[3]]),
        16 if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff => Some([b[12], b[13], b[14], b[15]]),
        16 => None,
        _ => return format!("?{}", b.iter().map(|x| format!("{:02x}", x)).collect::<String>()),
    };
    if let Some(a) = v4 {
        return format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    }
    let g: Vec<u16> = (0..8).map(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]])).collect();
    let (mut zs, mut ze) = (255usize, 255usize);
    for i in 0..8 {
        let mut j = i;
        while j < 8 && g[j] == 0 {
            j += 1;
        }
        let l = j - i;
        if l >= 2 && l > ze.wrapping_sub(zs) {
            zs = i;
            ze = j;
        }
    }
    let mut o = String::new();
    let mut i = 0;
    while i < 8 {
        if i == zs {
            o.push_str("::");
            i = ze;
            if i >= 8 {
                break;
            }
        } else if i > 0 {
            o.push(':');
        }
        o.push_str(&format!("{:x}", g[i]));
        i += 1;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_go() {
        assert_eq!(json_str(b"a<b>&\"\\\n\x01\x08\x0c"), r#""a\u003cb\u003e\u0026\"\\\n\u0001\b\f""#);
        assert_eq!(json_str(b"\xe2\x82x\xff"), r#""\ufffd\ufffdx\ufffd""#);
        assert_eq!(json_str("é\u{2028}".as_bytes()), "\"é\\u2028\"");
    }

    #[test]
    fn ip_like_go() {
        assert_eq!(ip(&[192, 168, 1, 10]), "192.168.1.10");
        let mut v6 = [0u8; 16];
        v6[0] = 0xfe;
        v6[1] = 0x80;
        v6[15] = 1;
        assert_eq!(ip(&v6), "fe80::1");
        assert_eq!(ip(&[0; 16]), "::");
        let mut m = [0u8; 16];
        m[10] = 0xff;
        m[11] = 0xff;
        m[12] = 10;
        m[15] = 1;
        assert_eq!(ip(&m), "10.0.0.1");
        // 1:0:0:1:0:0:0:1 → the longer run
        let g = [0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ip(&g), "1:0:0:1::1");
    }
}

//! The command line, parsed like Go's flag package parses the Go app's:
//! -name or --name, a value as the next argument or after "=", parsing
//! stops at the first non-flag argument or "--" (the rest is ignored, as
//! the Go app ignores it), -h/-help print the usage and exit 0, a bad flag
//! prints the error and the usage and exits 2. Integers as Go's
//! strconv.ParseInt(s, 0, 64): sign, 0x/0o/0b/0 prefixes, underscores.

use std::process::exit;

pub struct Opts {
    pub iface: String,
    pub buffer_mib: i64,
    pub snaplen: i64,
}

fn usage(prog: &str) -> String {
    format!(
        "Usage of {}:\n  -buffer-mib int\n    \tkernel capture ring in MiB (default 32)\n  -iface string\n    \tnetwork interface to capture on (default \"eth0\")\n  -snaplen int\n    \tbytes captured per frame (default 1024)\n",
        prog
    )
}

fn fail(prog: &str, msg: &str) -> ! {
    eprint!("{}\n{}", msg, usage(prog));
    exit(2);
}

pub fn parse(prog: &str, args: &[String]) -> Opts {
    let mut o = Opts { iface: "eth0".to_string(), buffer_mib: 32, snaplen: 1024 };
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        let mut name = &s[1..];
        if name.starts_with('-') {
            if s.len() == 2 {
                break; // "--" ends the flags
            }
            name = &s[2..];
        }
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            fail(prog, &format!("bad flag syntax: {}", s));
        }
        i += 1;
        let mut value: Option<String> = None;
        if let Some(eq) = name.bytes().skip(1).position(|c| c == b'=') {
            value = Some(name[eq + 2..].to_string());
            name = &name[..eq + 1];
        }
        if !matches!(name, "iface" | "buffer-mib" | "snaplen") {
            if name == "help" || name == "h" {
                eprint!("{}", usage(prog));
                exit(0);
            }
            fail(prog, &format!("flag provided but not defined: -{}", name));
        }
        let value = match value {
            Some(v) => v,
            None if i < args.len() => {
                i += 1;
                args[i - 1].clone()
            }
            None => fail(prog, &format!("flag needs an argument: -{}", name)),
        };
        match name {
            "iface" => o.iface = value,
            _ => {
                let n = match parse_int(&value) {
                    Ok(n) => n,
                    Err(why) => fail(prog, &format!("invalid value {} for flag -{}: {}", go_quote(&value), name, why)),
                };
                if name == "snaplen" {
                    o.snaplen = n;
                } else {
                    o.buffer_mib = n;
                }
            }
        }
    }
    o
}

/// strconv.ParseInt(s, 0, 64), with flag's error words.
fn parse_int(s: &str) -> Result<i64, &'static str> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    // Go's int: 64 bits on amd64, 32 on arm.
    let bits = usize::BITS - 1;
    let limit = if neg { 1u64 << bits } else { (1u64 << bits) - 1 };
    if u > limit {
        return Err("value out of range");
    }
    Ok(if neg { (u as i64).wrapping_neg() } else { u as i64 })
}

fn parse_uint(s: &str) -> Result<u64, &'static str> {
    const SYNTAX: &str = "parse error";
    if s.is_empty() {
        return Err(SYNTAX);
    }
    let b = s.as_bytes();
    let (base, digits) = if b[0] == b'0' && b.len() >= 3 && matches!(b[1].to_ascii_lowercase(), b'x' | b'o' | b'b') {
        (match b[1].to_ascii_lowercase() { b'x' => 16, b'o' => 8, _ => 2 }, &b[2..])
    } else if b[0] == b'0' && b.len() > 1 {
        (8, &b[1..])
    } else {
        (10, b)
    };
    if !underscore_ok(s) {
        return Err(SYNTAX);
    }
    let mut n: u64 = 0;
    let mut any = false;
    for &c in digits {
        if c == b'_' {
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return Err(SYNTAX),
        } as u64;
        if d >= base {
            return Err(SYNTAX);
        }
        any = true;
        // Go's int is 32 bits on arm: overflow is checked against that.
        let max = usize::MAX as u64;
        match n.checked_mul(base).and_then(|m| m.checked_add(d)).filter(|&m| m <= max) {
            Some(m) => n = m,
            None => return Err("value out of range"),
        }
    }
    if !any && base != 8 {
        return Err(SYNTAX);
    }
    Ok(n)
}

/// strconv's underscoreOK: underscores only between digits or after a
/// base prefix, never doubled or trailing.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        i = 1;
    }
    let mut hex = false;
    if b.len() - i >= 2 && b[i] == b'0' && matches!(b[i + 1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        hex = b[i + 1].to_ascii_lowercase() == b'x';
        i += 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// strconv.Quote, enough for what a command line holds.
fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_like_go() {
        assert_eq!(parse_int("1024"), Ok(1024));
        assert_eq!(parse_int("0x40"), Ok(64));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("-5"), Ok(-5));
        assert_eq!(parse_int("1__0"), Err("parse error"));
        assert_eq!(parse_int("abc"), Err("parse error"));
        assert_eq!(parse_int("99999999999999999999"), Err("value out of range"));
        assert_eq!(parse_int("0x"), Err("parse error"));
    }
}

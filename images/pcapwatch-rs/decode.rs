//! Frame decoding with the same acceptance rules as the Go pcapwatch, which
//! decodes with gopacket's DecodingLayerParser (Ethernet, Dot1Q, ARP, IPv4,
//! IPv6, UDP, DHCPv4, DNS; unsupported layers end decoding quietly). Both
//! apps must report the same events for the same frames, malformed ones
//! included, so this follows gopacket v1.1.19 check for check: which
//! layer comes next, which lengths are refused, and where gopacket reads
//! past a layer's end into the rest of the captured frame (a Go slice can
//! be re-sliced up to its capacity, which is the end of the frame).
//!
//! Each decoder takes the frame and the layer's [start, end) within it.

/// The layers the Go app decodes; anything else ends decoding.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Layer {
    Ethernet,
    Dot1Q,
    Arp,
    IPv4,
    IPv6,
    Udp,
    Dhcp,
    Dns,
}

/// What a frame carried that pcapwatch reports.
pub enum Event {
    /// ARP sender hardware and protocol addresses (Ethernet/IPv4 only).
    Arp { mac: [u8; 6], ip: [u8; 4] },
    /// A BOOTREQUEST with its message type (last option 53 of length 1),
    /// client hardware address (chaddr, hlen bytes) and hostname (last
    /// option 12).
    Dhcp { op: u8, msg_type: u8, chaddr: Vec<u8>, hostname: Vec<u8> },
    /// A DNS message that decoded completely, with the source address of
    /// the last IP header before it.
    Dns { qr: bool, opcode: u8, questions: Vec<(Vec<u8>, u16)>, src: Option<Vec<u8>> },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ethertype_layer(t: u16) -> Option<Layer> {
    match t {
        0x0800 => Some(Layer::IPv4),
        0x86dd => Some(Layer::IPv6),
        0x0806 => Some(Layer::Arp),
        0x8100 | 0x88a8 => Some(Layer::Dot1Q),
        0x6558 => Some(Layer::Ethernet), // transparent Ethernet bridging
        _ => None,
    }
}

fn ipproto_layer(p: u8) -> Option<Layer> {
    match p {
        4 => Some(Layer::IPv4),
        41 => Some(Layer::IPv6),
        17 => Some(Layer::Udp),
        _ => None,
    }
}

/// gopacket's UDP port table: a port with a decoder of its own (known
/// here or not) wins over the other port.
fn udp_port_layer(port: u16) -> Option<Option<Layer>> {
    match port {
        53 => Some(Some(Layer::Dns)),
        67 | 68 => Some(Some(Layer::Dhcp)),
        123 | 4789 | 546 | 547 | 5060 | 6343 | 6081 | 3784 | 2152 | 623 | 1812 => Some(None),
        _ => None,
    }
}

/// Decodes one frame and calls on for each event-bearing layer, in order.
pub fn frame(f: &[u8], on: &mut dyn FnMut(Event)) {
    let (mut start, mut end) = (0usize, f.len());
    let mut layer = Layer::Ethernet;
    let mut src: Option<Vec<u8>> = None;
    loop {
        // Every decoder returns the next layer and the payload bounds, or
        // None when the layer does not decode (which ends decoding).
        let next = match layer {
            Layer::Ethernet => ethernet(f, start, end),
            Layer::Dot1Q => dot1q(f, start, end),
            Layer::Arp => arp(f, start, end, on),
            Layer::IPv4 => ipv4(f, start, end, &mut src),
            Layer::IPv6 => ipv6(f, start, end, &mut src),
            Layer::Udp => udp(f, start, end),
            Layer::Dhcp => {
                dhcp(f, start, end, on);
                return;
            }
            Layer::Dns => {
                dns(f, start, end, src.take(), on);
                return;
            }
        };
        let (nl, s, e) = match next {
            Some(n) => n,
            None => return,
        };
        if s >= e {
            return; // an empty payload ends decoding
        }
        match nl {
            Some(l) => layer = l,
            None => return,
        }
        start = s;
        end = e;
    }
}

type Next = Option<(Option<Layer>, usize, usize)>;

fn ethernet(f: &[u8], s: usize, e: usize) -> Next {
    if e - s < 14 {
        return None;
    }
    let t = be16(f, s + 12);
    if t < 0x0600 {
        // An 802.3 length: the payload is trimmed to it; LLC is not decoded.
        let plen = e - s - 14;
        let end = if plen > t as usize { s + 14 + t as usize } else { e };
        return Some((None, s + 14, end));
    }
    Some((ethertype_layer(t), s + 14, e))
}

fn dot1q(f: &[u8], s: usize, e: usize) -> Next {
    if e - s < 4 {
        return None;
    }
    Some((ethertype_layer(be16(f, s + 2)), s + 4, e))
}

fn arp(f: &[u8], s: usize, e: usize, on: &mut dyn FnMut(Event)) -> Next {
    let d = &f[s..e];
    // Whatever else an ARP layer holds, decoding ends with it (its payload
    // is opaque), so only the report matters: Ethernet/IPv4 addresses of
    // the usual sizes. gopacket keeps the hardware type in a uint8
    // (LinkType), so 0x0101 counts as Ethernet too.
    if d.len() < 28 {
        return None;
    }
    let (hw, prot) = (d[4], d[5]);
    if be16(d, 0) as u8 == 1 && be16(d, 2) == 0x0800 && hw == 6 && prot == 4 {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&d[8..14]);
        let mut ip = [0u8; 4];
        ip.copy_from_slice(&d[14..18]);
        on(Event::Arp { mac, ip });
    }
    None
}

fn ipv4(f: &[u8], s: usize, e: usize, src: &mut Option<Vec<u8>>) -> Next {
    let d = &f[s..e];
    if d.len() < 20 {
        return None;
    }
    let flagsfrags = be16(d, 6);
    let ihl = (d[0] & 0x0f) as usize;
    let mut length = be16(d, 2);
    let proto = d[9];
    if length == 0 {
        // TSO: the length is that of the data (as a uint16).
        length = d.len() as u16;
    }
    let length = length as usize;
    if length < 20 || ihl < 5 || ihl * 4 > length {
        return None;
    }
    let mut dlen = d.len();
    if dlen > length {
        dlen = length;
    } else if dlen < length && ihl * 4 > dlen {
        return None;
    }
    // Options.
    let mut o = 20;
    let oend = ihl * 4;
    while o < oend {
        match d[o] {
            0 => break,
            1 => o += 1,
            _ => {
                if oend - o < 2 {
                    return None;
                }
                let ol = d[o + 1] as usize;
                if oend - o < ol || ol <= 2 {
                    return None;
                }
                o += ol;
            }
        }
    }
    *src = Some(d[12..16].to_vec());
    let more_fragments = flagsfrags & 0x2000 != 0;
    let frag_offset = flagsfrags & 0x1fff;
    let next = if more_fragments || frag_offset != 0 { None } else { ipproto_layer(proto) };
    Some((next, s + ihl * 4, s + dlen))
}

fn ipv6(f: &[u8], s: usize, e: usize, src: &mut Option<Vec<u8>>) -> Next {
    let d = &f[s..e];
    if d.len() < 40 {
        return None;
    }
    let length = be16(d, 4) as usize;
    let mut next_header = d[6];
    let mut ps = 40; // payload start within d
    let mut pe = d.len();
    if next_header == 0 {
        // Hop-by-hop options are part of the IPv6 layer for gopacket.
        let h = &d[40..];
        if h.len() < 2 {
            return None;
        }
        let hbh_next = h[0];
        let actual = h[1] as usize * 8 + 8;
        if h.len() < actual {
            return None;
        }
        let mut jumbo: Option<Option<u32>> = None; // Some(None): malformed
        let mut off = 2;
        while off < actual {
            let t = &h[off..];
            if t.len() < 2 {
                return None;
            }
            if t[0] == 0 {
                off += 1;
                continue;
            }
            let al = t[1] as usize + 2;
            if t.len() < al {
                return None;
            }
            if t[0] == 0xc2 && jumbo.is_none() {
                jumbo = Some(if al - 2 == 4 { Some(u32::from_be_bytes([t[2], t[3], t[4], t[5]])) } else { None });
            }
            off += al;
        }
        let jumbo_len = match jumbo {
            None => None,
            Some(None) => return None,
            Some(Some(l)) if l <= 65535 => return None,
            Some(Some(l)) => Some(l as usize),
        };
        match (jumbo_len, length) {
            (Some(pend), 0) => {
                *src = Some(d[8..24].to_vec());
                let pend = pend.min(h.len());
                return Some((ipproto_layer(hbh_next), s + 40, s + 40 + pend));
            }
            (Some(_), _) => return None,
            (None, 0) => return None,
            (None, _) => {
                ps = 40 + actual;
                next_header = hbh_next;
            }
        }
    }
    if length == 0 {
        return None;
    }
    if ps + length < pe {
        pe = ps + length;
    }
    *src = Some(d[8..24].to_vec());
    Some((ipproto_layer(next_header), s + ps, s + pe))
}

fn udp(f: &[u8], s: usize, e: usize) -> Next {
    let d = &f[s..e];
    if d.len() < 8 {
        return None;
    }
    let (sport, dport, ulen) = (be16(d, 0), be16(d, 2), be16(d, 4) as usize);
    let end = match ulen {
        0 => d.len(),
        1..=7 => return None,
        n => n.min(d.len()),
    };
    let next = match udp_port_layer(dport) {
        Some(l) => l,
        None => udp_port_layer(sport).unwrap_or(None),
    };
    Some((next, s + 8, s + end))
}

fn dhcp(f: &[u8], s: usize, e: usize, on: &mut dyn FnMut(Event)) {
    let d = &f[s..e];
    if d.len() < 240 {
        return;
    }
    let hlen = d[2] as usize;
    // chaddr is data[28:28+hlen] with 28+hlen computed in a uint8 (it
    // wraps, and a slice that ends before it starts panics: no decode),
    // and the end checked against the capacity, the end of the frame, not
    // against the DHCP payload's end.
    if 28 + hlen > 255 || s + 28 + hlen > f.len() {
        return;
    }
    let chaddr = f[s + 28..s + 28 + hlen].to_vec();
    if u32::from_be_bytes([d[236], d[237], d[238], d[239]]) != 0x6382_5363 {
        return;
    }
    let opts = &d[240..];
    let (mut msg_type, mut hostname) = (0u8, Vec::new());
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        match t {
            255 => break,
            0 => i += 1,
            _ => {
                if opts.len() - i < 2 {
                    return;
                }
                let l = opts[i + 1] as usize;
                if l > opts.len() - i - 2 {
                    return;
                }
                let v = &opts[i + 2..i + 2 + l];
                if t == 53 && l == 1 {
                    msg_type = v[0];
                } else if t == 12 {
                    hostname = v.to_vec();
                }
                i += l + 2;
            }
        }
    }
    on(Event::Dhcp { op: d[0], msg_type, chaddr, hostname });
}

const MAX_RECURSION: usize = 255;

/// gopacket's decodeName: appends ".label" for each label to buf (pointers
/// recurse) and returns the name's range in buf and the index after it.
fn decode_name(d: &[u8], offset: usize, buf: &mut Vec<u8>, level: usize) -> Option<(usize, usize, usize)> {
    if level > MAX_RECURSION || offset >= d.len() {
        return None;
    }
    let start = buf.len();
    let mut index = offset;
    if d[index] == 0 {
        return Some((start, start, index + 1));
    }
    while d[index] != 0 {
        match d[index] & 0xc0 {
            0x00 => {
                let index2 = index + d[index] as usize + 1;
                if index2 - offset > 255 || index2 > d.len() {
                    return None;
                }
                buf.push(b'.');
                buf.extend_from_slice(&d[index + 1..index2]);
                index = index2;
            }
            0xc0 => {
                if index + 2 > d.len() {
                    return None;
                }
                let p = (be16(d, index) & 0x3fff) as usize;
                if p > d.len() {
                    return None;
                }
                decode_name(d, p, buf, level + 1)?;
                index += 1;
                break;
            }
            _ => return None, // 0x40 and 0x80 label types are not supported
        }
        if index >= d.len() {
            return None;
        }
    }
    if buf.len() <= start {
        return Some((start, start, index + 1));
    }
    Some((start + 1, buf.len(), index + 1))
}

fn char_strings(d: &[u8]) -> bool {
    let mut i = 0;
    while i != d.len() {
        let i2 = i + 1 + d[i] as usize;
        if i2 > d.len() {
            return false;
        }
        i = i2;
    }
    true
}

fn resource_record(d: &[u8], offset: usize, buf: &mut Vec<u8>) -> Option<usize> {
    let (_, _, endq) = decode_name(d, offset, buf, 1)?;
    // The fixed fields past the data's end: Go either panics or fails the
    // length check below; both mean the DNS layer does not decode.
    if endq + 10 > d.len() {
        return None;
    }
    let typ = be16(d, endq);
    let dl = be16(d, endq + 8) as usize;
    let end = endq + 10 + dl;
    if end > d.len() {
        return None;
    }
    let data = &d[..end];
    let off = endq + 10;
    let ok = match typ {
        16 | 13 => char_strings(&d[off..end]), // TXT, HINFO
        2 | 5 | 12 => decode_name(data, off, buf, 1).is_some(), // NS, CNAME, PTR
        6 => match decode_name(data, off, buf, 1).and_then(|(_, _, e)| decode_name(data, e, buf, 1)) {
            Some((_, _, e)) => data.len() >= e + 20,
            None => false,
        }, // SOA
        15 => data.len() >= off + 2 && decode_name(data, off + 2, buf, 1).is_some(), // MX
        256 => dl >= 4, // URI
        33 => data.len() >= off + 6 && decode_name(data, off + 6, buf, 1).is_some(), // SRV
        41 => opts_ok(data, off), // OPT
        _ => true,
    };
    if ok {
        Some(end)
    } else {
        None
    }
}

fn opts_ok(d: &[u8], offset: usize) -> bool {
    let end = d.len();
    if offset == end {
        return true;
    }
    if offset + 4 > end {
        return false;
    }
    let mut i = offset;
    while i < end {
        if d.len() < i + 4 {
            return false;
        }
        let l = be16(d, i + 2) as usize;
        if i + 4 + l > end {
            return false;
        }
        i += l + 4;
    }
    true
}

fn dns(f: &[u8], s: usize, e: usize, src: Option<Vec<u8>>, on: &mut dyn FnMut(Event)) {
    let d = &f[s..e];
    if d.len() < 12 {
        return;
    }
    let qr = d[2] & 0x80 != 0;
    let opcode = (d[2] >> 3) & 0x0f;
    let counts = [be16(d, 4), be16(d, 6), be16(d, 8), be16(d, 10)];
    let mut buf = Vec::new();
    let mut questions = Vec::new();
    let mut offset = 12;
    for _ in 0..counts[0] {
        let (ns, ne, endq) = match decode_name(d, offset, &mut buf, 1) {
            Some(n) => n,
            None => return,
        };
        // Type and class are read with data[endq:endq+4], which Go allows
        // up to the end of the frame, past the UDP payload.
        if s + endq + 4 > f.len() {
            return;
        }
        let typ = be16(f, s + endq);
        questions.push((buf[ns..ne].to_vec(), typ));
        offset = endq + 4;
    }
    for _ in 0..(counts[1] as usize + counts[2] as usize + counts[3] as usize) {
        offset = match resource_record(d, offset, &mut buf) {
            Some(o) => o,
            None => return,
        };
    }
    on(Event::Dns { qr, opcode, questions, src });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_with_pointer() {
        // "a" label then a pointer to "b.c" at 0.
        let d = [1, b'b', 1, b'c', 0, 1, b'a', 0xc0, 0];
        let mut buf = Vec::new();
        let (s, e, next) = decode_name(&d, 5, &mut buf, 1).unwrap();
        assert_eq!(&buf[s..e], b"a.b.c");
        assert_eq!(next, 9);
    }

    #[test]
    fn pointer_loop_is_refused() {
        let d = [0xc0, 0];
        assert!(decode_name(&d, 0, &mut Vec::new(), 1).is_none());
    }
}

//! Value-level building blocks shared by the compiler, the matcher and the reference
//! evaluator: EventBridge's fixed-point numbers, case folding, wildcards and IP addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest magnitude numeric matching supports (EventBridge: -5.0e9 ..= +5.0e9).
pub const NUMERIC_LIMIT: i64 = 5_000_000_000;
const SCALE_DIGITS: i32 = 6;
const LIMIT_SCALED: i128 = 5_000_000_000_000_000;

/// A JSON number as EventBridge compares it: the value times 10^6, rounded down, i.e.
/// six digits to the right of the decimal point, within -5.0e9 ..= +5.0e9.
///
/// Returns `None` when `text` is not a JSON number or is outside the range. The
/// conversion is exact decimal arithmetic on the text (no binary floating point).
pub fn fixed6(text: &[u8]) -> Option<i64> {
    match fixed6_plain(text) {
        Some(r) => r,
        None => fixed6_general(text),
    }
}

/// Fast path of [`fixed6`] for plain decimals (no exponent, at most 11 integer digits):
/// the integer part and the first six fraction digits are read directly, the rest only
/// decides the rounding. `None` means "use the general path".
#[inline]
fn fixed6_plain(t: &[u8]) -> Option<Option<i64>> {
    const POW10: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let neg = t.first() == Some(&b'-');
    let body = &t[usize::from(neg)..];
    let int_len = body
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(body.len());
    if int_len == 0 || int_len > 11 {
        return None;
    }
    let ip = body[..int_len]
        .iter()
        .fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'));
    let rest = &body[int_len..];
    let (fp, rest_nonzero) = match rest.split_first() {
        None => (0, false),
        Some((b'.', frac)) => {
            let frac_len = frac
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            if frac_len == 0 {
                return Some(None);
            }
            if frac_len != frac.len() {
                return None; // exponent or trailing garbage
            }
            if let Some(w) = digits8(frac) {
                // eight fraction digits at once: the first six are kept, the rest
                // only decide the rounding
                let v = parse8(w);
                let tail_nonzero = frac[8..].iter().any(|&c| c != b'0');
                (v / 100, !v.is_multiple_of(100) || tail_nonzero)
            } else {
                let head = &frac[..frac_len.min(6)];
                let fp = head.iter().fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'))
                    * POW10[6 - head.len()];
                (fp, frac[head.len()..].iter().any(|&c| c != b'0'))
            }
        }
        Some(_) => return None,
    };
    let mag = (ip * 1_000_000 + fp) as i64;
    let v = if neg {
        -mag - i64::from(rest_nonzero)
    } else {
        mag
    };
    let limit = LIMIT_SCALED as i64;
    if v > limit || v < -limit || (v == limit && rest_nonzero) {
        return Some(None);
    }
    Some(Some(v))
}

/// The first eight bytes of `s` as a little-endian word, when they are all ASCII digits.
#[inline]
fn digits8(s: &[u8]) -> Option<u64> {
    let w = u64::from_le_bytes(s.get(..8)?.try_into().ok()?);
    let all_digits = (w & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && (w.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    all_digits.then_some(w)
}

/// The value of eight ASCII digits (first digit in the lowest byte), by SWAR
/// multiply-and-shift: pairs, then quads, then the whole.
#[inline]
fn parse8(w: u64) -> u64 {
    let v = w - 0x3030_3030_3030_3030;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF; // 2-digit groups
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF; // 4-digit groups
    (v * 10_000 + (v >> 32)) & 0xFFFF_FFFF // 8 digits
}

/// General path of [`fixed6`]: any JSON number, exact decimal arithmetic.
fn fixed6_general(text: &[u8]) -> Option<i64> {
    let mut i = 0;
    let neg = text.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    // mantissa digits (leading zeros dropped), decimal exponent
    let mut mant: i128 = 0;
    let mut mant_digits = 0u32;
    let mut exp: i32 = 0;
    let mut any_digit = false;
    let mut dropped_nonzero = false;
    let push = |d: u8, mant: &mut i128, mant_digits: &mut u32, exp: &mut i32, dn: &mut bool| {
        if *mant_digits < 30 {
            if *mant != 0 || d != 0 {
                *mant = *mant * 10 + i128::from(d);
                *mant_digits += 1;
            }
        } else {
            // precision beyond 30 digits only matters for the rounding direction
            *exp += 1;
            if d != 0 {
                *dn = true;
            }
        }
    };
    while let Some(&c) = text.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        push(
            c - b'0',
            &mut mant,
            &mut mant_digits,
            &mut exp,
            &mut dropped_nonzero,
        );
        any_digit = true;
        i += 1;
    }
    if !any_digit {
        return None;
    }
    if text.get(i) == Some(&b'.') {
        i += 1;
        let mut frac = false;
        while let Some(&c) = text.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if mant_digits < 30 {
                push(
                    c - b'0',
                    &mut mant,
                    &mut mant_digits,
                    &mut exp,
                    &mut dropped_nonzero,
                );
                exp -= 1;
            } else if c != b'0' {
                dropped_nonzero = true;
            }
            frac = true;
            i += 1;
        }
        if !frac {
            return None;
        }
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match text.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut e: i32 = 0;
        let mut any = false;
        while let Some(&c) = text.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            any = true;
            i += 1;
        }
        if !any {
            return None;
        }
        exp = exp.saturating_add(if eneg { -e } else { e });
    }
    if i != text.len() {
        return None;
    }
    // scaled = mant * 10^(exp + 6), floor
    let shift = exp.saturating_add(SCALE_DIGITS);
    let (mut scaled, remainder) = if mant == 0 {
        (0i128, false)
    } else if shift >= 0 {
        if shift > 20 || mant_digits as i32 + shift > 20 {
            return None;
        }
        (mant * 10i128.pow(shift as u32), false)
    } else {
        let k = -shift;
        if k > 38 {
            (0, true)
        } else {
            let p = 10i128.pow(k as u32);
            (mant / p, mant % p != 0)
        }
    };
    let inexact = remainder || dropped_nonzero;
    if neg {
        scaled = -scaled;
        if inexact {
            scaled -= 1; // floor for negatives
        }
    }
    if !(-LIMIT_SCALED..=LIMIT_SCALED).contains(&scaled) || (scaled == LIMIT_SCALED && inexact) {
        return None;
    }
    Some(scaled as i64)
}

/// Folds one character for case-insensitive comparison: the simple upper-case mapping,
/// then the simple lower-case mapping of that (Java's `equalsIgnoreCase` rule).
#[inline]
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut up = c.to_uppercase();
    let u = match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    };
    let mut low = u.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => l,
        _ => u,
    }
}

/// The case-folded form of `s` (see [`fold_char`]).
pub fn fold(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// Folds `s` into `out` (cleared first); ASCII takes a fast path.
#[inline]
pub fn fold_into(s: &str, out: &mut String) {
    out.clear();
    if s.is_ascii() {
        out.push_str(s);
        // SAFETY-free: make_ascii_lowercase keeps UTF-8 valid
        out.make_ascii_lowercase();
    } else {
        out.extend(s.chars().map(fold_char));
    }
}

/// One element of a compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WildPart {
    Star,
    Lit(Vec<u8>),
}

/// Parses a wildcard pattern (`*` any run of bytes, `\*` and `\\` escapes).
///
/// `offset` is added to byte positions in error texts (EventBridge counts from the
/// opening quote of the JSON string, so callers pass 1).
pub(crate) fn parse_wildcard(p: &str, offset: usize) -> Result<Vec<WildPart>, String> {
    let b = p.as_bytes();
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' => {
                if b.get(i + 1) == Some(&b'*') {
                    return Err(format!(
                        "Consecutive wildcard characters at pos {}",
                        i + offset
                    ));
                }
                if !lit.is_empty() {
                    parts.push(WildPart::Lit(std::mem::take(&mut lit)));
                }
                parts.push(WildPart::Star);
            }
            b'\\' => match b.get(i + 1) {
                Some(&n @ (b'*' | b'\\')) => {
                    lit.push(n);
                    i += 1;
                }
                _ => return Err(format!("Invalid escape character at pos {}", i + offset)),
            },
            c => lit.push(c),
        }
        i += 1;
    }
    if !lit.is_empty() {
        parts.push(WildPart::Lit(lit));
    }
    Ok(parts)
}

/// Matches `s` against parsed wildcard parts: greedy-free linear-time glob matching
/// (each literal after a star is found at its leftmost position).
pub(crate) fn wildcard_match(parts: &[WildPart], s: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut i = 0usize;
    // leading literal must be a prefix
    if let Some(WildPart::Lit(l)) = parts.first() {
        if s.len() < l.len() || s[..l.len()].iter().zip(l).any(|(a, b)| a != b) {
            return false;
        }
        pos = l.len();
        i = 1;
    }
    if i == parts.len() {
        return pos == s.len();
    }
    // trailing literal must be a suffix (when the pattern does not end with a star)
    let (mid_end, suffix) = match parts.last() {
        Some(WildPart::Lit(l)) if parts.len() > i => (parts.len() - 1, Some(l)),
        _ => (parts.len(), None),
    };
    let limit = match suffix {
        Some(l) => {
            if s.len() < pos + l.len()
                || s[s.len() - l.len()..]
                    .iter()
                    .zip(l.iter())
                    .any(|(a, b)| a != b)
            {
                return false;
            }
            s.len() - l.len()
        }
        None => s.len(),
    };
    for part in &parts[i..mid_end] {
        if let WildPart::Lit(l) = part {
            match memchr::memmem::find(&s[pos..limit], l) {
                Some(at) => pos += at + l.len(),
                None => return false,
            }
        }
    }
    true
}

/// Parses an IP address literal the way EventBridge recognises one: a dotted-quad IPv4
/// address or an IPv6 address. Returns the address bytes (4 or 16).
pub(crate) fn parse_ip(s: &str) -> Option<IpBytes> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(|a| IpBytes::V6(a.octets()))
    } else {
        let b = s.as_bytes();
        if b.is_empty() || !b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
            return None;
        }
        let mut octets = [0u8; 4];
        let mut n = 0;
        for part in s.split('.') {
            if n == 4 || part.is_empty() || part.len() > 3 {
                return None;
            }
            let v: u16 = part.parse().ok()?;
            if v > 255 {
                return None;
            }
            octets[n] = v as u8;
            n += 1;
        }
        if n != 4 {
            return None;
        }
        Some(IpBytes::V4(Ipv4Addr::from(octets).octets()))
    }
}

/// An IPv4 or IPv6 address as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IpBytes {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpRange {
    pub lo: IpBytes,
    pub hi: IpBytes,
}

impl IpRange {
    pub(crate) fn contains(&self, ip: &IpBytes) -> bool {
        match (ip, &self.lo, &self.hi) {
            (IpBytes::V4(a), IpBytes::V4(l), IpBytes::V4(h)) => a >= l && a <= h,
            (IpBytes::V6(a), IpBytes::V6(l), IpBytes::V6(h)) => a >= l && a <= h,
            _ => false,
        }
    }
}

/// Parses a `cidr` operand, with EventBridge's error texts.
pub(crate) fn parse_cidr(s: &str) -> Result<IpRange, String> {
    // split on '/', dropping trailing empty parts (Java `String.split`)
    let mut parts: Vec<&str> = s.split('/').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() != 2 {
        return Err("Malformed CIDR, one '/' required".into());
    }
    let bits_text = parts[1];
    let bits: i64 = parse_java_int(bits_text)
        .ok_or_else(|| "Malformed CIDR, mask bits must be an integer".to_string())?;
    if bits < 0 {
        return Err("Malformed CIDR, mask bits must not be negative".into());
    }
    let ip = parse_ip(parts[0]).ok_or_else(|| format!("Nonstandard IP address: {}", parts[0]))?;
    match ip {
        IpBytes::V4(b) => {
            if bits > 31 {
                return Err("IPv4 mask bits must be < 32".into());
            }
            let (lo, hi) = mask_range(&b, bits as u32);
            Ok(IpRange {
                lo: IpBytes::V4(lo),
                hi: IpBytes::V4(hi),
            })
        }
        IpBytes::V6(b) => {
            if bits > 127 {
                return Err("IPv6 mask bits must be < 128".into());
            }
            let (lo, hi) = mask_range(&b, bits as u32);
            Ok(IpRange {
                lo: IpBytes::V6(lo),
                hi: IpBytes::V6(hi),
            })
        }
    }
}

/// The range EventBridge derives from a CIDR: from the address as written up to the
/// address with all host bits set.
fn mask_range<const N: usize>(b: &[u8; N], bits: u32) -> ([u8; N], [u8; N]) {
    let mut hi = *b;
    let host = N as u32 * 8 - bits;
    for (i, byte) in hi.iter_mut().enumerate().rev() {
        let from_end = (N - 1 - i) as u32 * 8;
        if host >= from_end + 8 {
            *byte = 0xff;
        } else if host > from_end {
            *byte |= ((1u16 << (host - from_end)) - 1) as u8;
        }
    }
    (*b, hi)
}

fn parse_java_int(s: &str) -> Option<i64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.is_empty() || t.starts_with('+') {
        return None;
    }
    let v: i64 = t.parse().ok()?;
    if v > i64::from(i32::MAX) || v < i64::from(i32::MIN) {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed6_paths_agree() {
        for t in [
            "0",
            "-0",
            "1",
            "-1",
            "12.5",
            "-12.5",
            "0.0000001",
            "-0.0000001",
            "4999999999.999999",
            "5000000000",
            "5000000000.0000001",
            "-5000000000.0000001",
            "-122.42916360922355",
            "37.729900216217324",
            "00012",
            "1.",
            "-",
            "99999999999",
            "123456789012",
        ] {
            assert_eq!(fixed6(t.as_bytes()), fixed6_general(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn parse8_digits() {
        for t in ["00000000", "12345678", "99999999", "10000001", "42916360"] {
            let w = digits8(t.as_bytes()).unwrap();
            assert_eq!(parse8(w), t.parse::<u64>().unwrap(), "{t}");
        }
        assert!(digits8(b"1234567a").is_none());
        assert!(digits8(b"12345:78").is_none());
        assert!(digits8(b"1234567").is_none());
    }

    #[test]
    fn fixed6_fast_path_agrees_on_many_numbers() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let int = x % 100_000;
            let frac_len = (x >> 20) % 20;
            let frac: String = (0..frac_len)
                .map(|k| char::from(b'0' + ((x >> (k * 3 % 60)) % 10) as u8))
                .collect();
            let sign = if x & 1 == 1 { "-" } else { "" };
            let t = if frac_len == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            };
            assert_eq!(fixed6(t.as_bytes()), fixed6_general(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn fixed6_is_exact_decimal_floor() {
        assert_eq!(fixed6(b"300"), Some(300_000_000));
        assert_eq!(fixed6(b"300.0"), fixed6(b"300"));
        assert_eq!(fixed6(b"3.018e2"), Some(301_800_000));
        assert_eq!(fixed6(b"0.0000009"), Some(0));
        assert_eq!(fixed6(b"-0.0000009"), Some(-1));
        assert_eq!(fixed6(b"-122.42916360922355"), Some(-122_429_164));
        assert_eq!(fixed6(b"5e9"), Some(5_000_000_000_000_000));
        assert_eq!(fixed6(b"5000000000.0000001"), None);
        assert_eq!(fixed6(b"-5e9"), Some(-5_000_000_000_000_000));
        assert_eq!(fixed6(b"123456789012"), None);
        assert_eq!(fixed6(b"1e400"), None);
        assert_eq!(fixed6(b"1e-400"), Some(0));
        assert_eq!(fixed6(b"abc"), None);
        assert_eq!(fixed6(b"1."), None);
        assert_eq!(fixed6(b""), None);
        assert_eq!(fixed6(b"-"), None);
    }

    #[test]
    fn folding() {
        assert_eq!(fold("EvEnTb"), "eventb");
        assert_eq!(fold("ÉCOLE"), "école");
        assert_eq!(fold_char('ſ'), 's'); // long s upper-cases to S
        let mut out = String::new();
        fold_into("MiXeD", &mut out);
        assert_eq!(out, "mixed");
    }

    #[test]
    fn wildcards() {
        let w = |p: &str, s: &str| wildcard_match(&parse_wildcard(p, 1).unwrap(), s.as_bytes());
        assert!(w("/Users/*/doc.txt", "/Users/a/b/c/doc.txt"));
        assert!(!w("/Users/*/doc.txt", "/Users/a/notdoc.txt2"));
        assert!(w("*", ""));
        assert!(w("", ""));
        assert!(!w("", "x"));
        assert!(w("a*a", "aa"));
        assert!(!w("a*a", "a"));
        assert!(w("2*0*1*7", "2607117"));
        assert!(w(r"a\*b", "a*b"));
        assert!(!w(r"a\*b", "axb"));
        assert_eq!(
            parse_wildcard("ab**", 1).unwrap_err(),
            "Consecutive wildcard characters at pos 3"
        );
        assert_eq!(
            parse_wildcard(r"a\b", 1).unwrap_err(),
            "Invalid escape character at pos 2"
        );
    }

    #[test]
    fn cidr() {
        let r = parse_cidr("10.0.0.0/24").unwrap();
        assert!(r.contains(&parse_ip("10.0.0.255").unwrap()));
        assert!(!r.contains(&parse_ip("10.0.1.0").unwrap()));
        assert!(parse_ip("10.0.0.256").is_none());
        let r6 = parse_cidr("2001:db8:1234:1a00::/64").unwrap();
        assert!(r6.contains(&parse_ip("2001:0db8:1234:1a00:0000:0000:0000:0000").unwrap()));
        assert!(!r6.contains(&parse_ip("2001:0db8:123f:1a01::").unwrap()));
        assert_eq!(
            parse_cidr("bad").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            parse_cidr("bad-/64filter").unwrap_err(),
            "Malformed CIDR, mask bits must be an integer"
        );
        assert_eq!(
            parse_cidr("xx.11.xx/8").unwrap_err(),
            "Nonstandard IP address: xx.11.xx"
        );
        assert_eq!(
            parse_cidr("10.0.0.0/32").unwrap_err(),
            "IPv4 mask bits must be < 32"
        );
    }
}

//! Low-level JSON byte scanning: whitespace, strings, scalars, and fast skipping of
//! whole objects/arrays the matcher does not need to look into.

/// Advances past JSON whitespace.
#[inline(always)]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// Finds the closing quote of a string whose body starts at `i` (just after the opening
/// quote). Returns the index of the closing quote and whether the body has escapes.
#[inline]
pub(crate) fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    // short strings dominate: scan a few bytes directly before calling memchr
    let short_end = (i + 16).min(b.len());
    while i < short_end {
        match b[i] {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
                if i > short_end {
                    break;
                }
            }
            _ => i += 1,
        }
    }
    loop {
        let rel = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        i += rel;
        if b[i] == b'"' {
            return Some((i, escaped));
        }
        escaped = true;
        i += 2;
    }
}

/// End of a number or literal starting at `i`.
#[inline]
pub(crate) fn scalar_end(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// Decodes a JSON string body with escapes into `out`. Returns false on a bad escape.
pub(crate) fn unescape(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            return false;
        };
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(hi) = hex4(raw, i) else {
                    return false;
                };
                i += 4;
                if (0xD800..0xDC00).contains(&hi)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                {
                    match hex4(raw, i + 2) {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                .unwrap_or('\u{FFFD}')
                        }
                        _ => '\u{FFFD}',
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            _ => return false,
        };
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
    true
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i + 4)?;
    let mut v = 0;
    for &c in s {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Skips any JSON value starting at `i` (no whitespace before it). Returns the index
/// just past it, or `None` when the input ends first.
#[inline]
pub(crate) fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i + 1).map(|(e, _)| e + 1),
        b'{' | b'[' => skip_container(b, i),
        _ => {
            let e = scalar_end(b, i);
            if e == i {
                None
            } else {
                Some(e)
            }
        }
    }
}

#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Bit masks over a 64-byte block: quotes, backslashes, `{`/`[`, `}`/`]`.
#[inline(always)]
fn block_masks(block: &[u8; 64]) -> (u64, u64, u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; loads are unaligned loads
        // within the 64-byte array.
        unsafe {
            use std::arch::x86_64::*;
            let q = _mm_set1_epi8(b'"' as i8);
            let bs = _mm_set1_epi8(b'\\' as i8);
            let open = _mm_set1_epi8(b'{' as i8);
            let close = _mm_set1_epi8(b'}' as i8);
            let lower = _mm_set1_epi8(0x20);
            let (mut mq, mut mb, mut mo, mut mc) = (0u64, 0u64, 0u64, 0u64);
            for k in 0..4 {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
                // '{' 0x7B / '[' 0x5B and '}' 0x7D / ']' 0x5D differ only in bit 0x20
                let vl = _mm_or_si128(v, lower);
                let sh = 16 * k;
                mq |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) as u32 as u64) << sh;
                mb |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, bs)) as u32 as u64) << sh;
                mo |= (_mm_movemask_epi8(_mm_cmpeq_epi8(vl, open)) as u32 as u64) << sh;
                mc |= (_mm_movemask_epi8(_mm_cmpeq_epi8(vl, close)) as u32 as u64) << sh;
            }
            (mq, mb, mo, mc)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (mut mq, mut mb, mut mo, mut mc) = (0u64, 0u64, 0u64, 0u64);
        for (k, &c) in block.iter().enumerate() {
            let bit = 1u64 << k;
            match c {
                b'"' => mq |= bit,
                b'\\' => mb |= bit,
                b'{' | b'[' => mo |= bit,
                b'}' | b']' => mc |= bit,
                _ => {}
            }
        }
        (mq, mb, mo, mc)
    }
}

/// Skips the object or array starting at `start` (which holds `{` or `[`), 64 bytes at
/// a time: string contents are masked out with a prefix-xor over the quote bits, and a
/// block whose closing brackets cannot bring the depth to zero is passed over whole.
/// Blocks containing backslashes are walked byte by byte.
pub(crate) fn skip_container(b: &[u8], start: usize) -> Option<usize> {
    let mut depth: i64 = 0;
    let mut in_str = false;
    let mut escaped = false;
    let mut i = start;
    let mut block = [b' '; 64];
    while i < b.len() {
        let end = (i + 64).min(b.len());
        let chunk = &b[i..end];
        if chunk.len() == 64 {
            block.copy_from_slice(chunk);
        } else {
            block = [b' '; 64];
            block[..chunk.len()].copy_from_slice(chunk);
        }
        let (quote, bs, open, close) = block_masks(&block);
        if bs != 0 || escaped {
            for (k, &c) in chunk.iter().enumerate() {
                if in_str {
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' {
                        escaped = true;
                    } else if c == b'"' {
                        in_str = false;
                    }
                } else {
                    match c {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(i + k + 1);
                            }
                        }
                        _ => {}
                    }
                }
            }
            i = end;
            continue;
        }
        let carry = if in_str { u64::MAX } else { 0 };
        let instr = prefix_xor(quote) ^ carry;
        in_str = instr >> 63 == 1;
        let open_s = open & !instr;
        let close_s = close & !instr;
        let n_close = i64::from(close_s.count_ones());
        if n_close < depth {
            depth += i64::from(open_s.count_ones()) - n_close;
            i = end;
            continue;
        }
        let mut bits = open_s | close_s;
        while bits != 0 {
            let t = bits.trailing_zeros();
            if (open_s >> t) & 1 == 1 {
                depth += 1;
            } else {
                depth -= 1;
                if depth == 0 {
                    return Some(i + t as usize + 1);
                }
            }
            bits &= bits - 1;
        }
        i = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_skip(b: &[u8], start: usize) -> Option<usize> {
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        for (k, &c) in b.iter().enumerate().skip(start) {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(k + 1);
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }

    #[test]
    fn skip_matches_naive_on_tricky_inputs() {
        let cases: &[&str] = &[
            r#"{"a":"}}}]]]","b":[1,2,{"c":"\"}"}],"d":"\\"}tail"#,
            r#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],1"#,
            r#"{"x":"a long string with { and [ inside that spans well past sixty-four bytes of input ]]]]","y":{}}"#,
            r#"{"unterminated":"#,
            r#"{"e":"\\\\\"","f":"\\"}"#,
        ];
        for c in cases {
            assert_eq!(
                skip_container(c.as_bytes(), 0),
                naive_skip(c.as_bytes(), 0),
                "{c}"
            );
        }
    }

    #[test]
    fn strings_and_escapes() {
        let b = br#""abc\"def" rest"#;
        assert_eq!(string_end(b, 1), Some((9, true)));
        let mut out = Vec::new();
        assert!(unescape(br#"a\"b\u00e9\ud83d\ude80"#, &mut out));
        assert_eq!(String::from_utf8(out).unwrap(), "a\"b\u{e9}\u{1F680}");
        assert!(!unescape(br"bad\q", &mut Vec::new()));
    }
}

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
///
/// Sixteen bytes are examined at a time with SSE2 (part of the x86_64 baseline).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    use std::arch::x86_64::*;
    let mut escaped = false;
    loop {
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is part of the x86_64 baseline; the 16-byte unaligned load
            // lies within `b` (checked by the loop condition).
            let m = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let s = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(q, s)) as u32
            };
            if m == 0 {
                i += 16;
                continue;
            }
            i += m.trailing_zeros() as usize;
            break;
        }
        // at a quote or backslash, or fewer than 16 bytes remain
        loop {
            match *b.get(i)? {
                b'"' => return Some((i, escaped)),
                b'\\' => {
                    escaped = true;
                    i += 2;
                    break;
                }
                _ => i += 1,
            }
        }
    }
}

/// Finds the closing quote of a string whose body starts at `i` (just after the opening
/// quote). Returns the index of the closing quote and whether the body has escapes.
///
/// Eight bytes are examined at a time (SWAR: a word has a `"` or `\` byte exactly when
/// the has-zero-byte test fires on it xor-ed with the repeated byte).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = ONES * b'"' as u64;
    const BSLASH: u64 = ONES * b'\\' as u64;
    let mut escaped = false;
    loop {
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes([
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ]);
            let q = w ^ QUOTE;
            let s = w ^ BSLASH;
            let hit = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
            if hit == 0 {
                i += 8;
                continue;
            }
            i += (hit.trailing_zeros() / 8) as usize;
            break;
        }
        // fewer than 8 bytes left, or `i` is at (or before) a quote/backslash
        loop {
            match *b.get(i)? {
                b'"' => return Some((i, escaped)),
                b'\\' => {
                    escaped = true;
                    i += 2;
                    break;
                }
                _ => i += 1,
            }
        }
    }
}

/// End of a number or literal starting at `i`: the first `,` `}` `]` or whitespace
/// (sixteen bytes at a time with SSE2; any byte below `!` or above `~` also ends it).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn scalar_end(b: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::*;
    while i + 16 <= b.len() {
        // SAFETY: SSE2 is part of the x86_64 baseline; the 16-byte unaligned load lies
        // within `b` (checked by the loop condition).
        let m = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
            let comma = _mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8));
            // '}' 0x7D and ']' 0x5D differ only in bit 0x20
            let close = _mm_cmpeq_epi8(
                _mm_or_si128(v, _mm_set1_epi8(0x20)),
                _mm_set1_epi8(b'}' as i8),
            );
            // signed: whitespace/control (< '!') and bytes >= 0x80
            let low = _mm_cmplt_epi8(v, _mm_set1_epi8(b'!' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(comma, close), low)) as u32
        };
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    scalar_end_bytes(b, i)
}

/// End of a number or literal starting at `i` (portable).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn scalar_end(b: &[u8], i: usize) -> usize {
    scalar_end_bytes(b, i)
}

#[inline]
fn scalar_end_bytes(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if matches!(c, b',' | b'}' | b']') || !(b'!'..0x80).contains(&c) {
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

/// Bit masks over a 64-byte block with AVX2 (two 32-byte lanes).
///
/// # Safety
/// The CPU must support AVX2 and `block` must be at least 64 bytes long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_masks_avx2(block: &[u8]) -> (u64, u64, u64, u64) {
    use std::arch::x86_64::*;
    let q = _mm256_set1_epi8(b'"' as i8);
    let bs = _mm256_set1_epi8(b'\\' as i8);
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    let lower = _mm256_set1_epi8(0x20);
    let (mut mq, mut mb, mut mo, mut mc) = (0u64, 0u64, 0u64, 0u64);
    for k in 0..2 {
        let v = _mm256_loadu_si256(block.as_ptr().add(32 * k) as *const __m256i);
        let vl = _mm256_or_si256(v, lower);
        let sh = 32 * k;
        mq |= (_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, q)) as u32 as u64) << sh;
        mb |= (_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, bs)) as u32 as u64) << sh;
        mo |= (_mm256_movemask_epi8(_mm256_cmpeq_epi8(vl, open)) as u32 as u64) << sh;
        mc |= (_mm256_movemask_epi8(_mm256_cmpeq_epi8(vl, close)) as u32 as u64) << sh;
    }
    (mq, mb, mo, mc)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
                && std::arch::is_x86_feature_detected!("bmi1")
                && std::arch::is_x86_feature_detected!("pclmulqdq");
            STATE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Bit masks over a 64-byte block: quotes, backslashes, `{`/`[`, `}`/`]`.
#[inline(always)]
fn block_masks(block: &[u8]) -> (u64, u64, u64, u64) {
    debug_assert!(block.len() >= 64);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; the four unaligned 16-byte loads
        // stay within `block`, which callers guarantee is at least 64 bytes long.
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
        for (k, &c) in block[..64].iter().enumerate() {
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
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: AVX2 support was just checked.
            return unsafe { skip_container_avx2(b, start) };
        }
    }
    skip_container_with(b, start, block_masks, prefix_xor)
}

/// [`skip_container`] compiled with AVX2, POPCNT, BMI1 and PCLMULQDQ enabled.
///
/// # Safety
/// The CPU must support those features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
unsafe fn skip_container_avx2(b: &[u8], start: usize) -> Option<usize> {
    // SAFETY (of the closures): callers of this function guarantee the CPU features,
    // and `skip_container_with` only passes blocks of at least 64 bytes.
    skip_container_with(
        b,
        start,
        |blk| unsafe { block_masks_avx2(blk) },
        |x| unsafe { prefix_xor_clmul(x) },
    )
}

/// Prefix xor by carry-less multiplication with all ones.
///
/// # Safety
/// The CPU must support PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
#[inline]
unsafe fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::*;
    let a = _mm_set_epi64x(0, x as i64);
    let ones = _mm_set1_epi8(-1);
    _mm_cvtsi128_si64(_mm_clmulepi64_si128(a, ones, 0)) as u64
}

#[inline(always)]
fn skip_container_with(
    b: &[u8],
    start: usize,
    masks: impl Fn(&[u8]) -> (u64, u64, u64, u64),
    pxor: impl Fn(u64) -> u64,
) -> Option<usize> {
    let mut depth: i64 = 0;
    let mut in_str = false;
    let mut escaped = false;
    let mut i = start;
    while i < b.len() {
        let end = (i + 64).min(b.len());
        let chunk = &b[i..end];
        let (quote, bs, open, close) = if chunk.len() == 64 {
            masks(chunk)
        } else if b.len() >= 64 {
            // the last, partial block: read the final 64 bytes of the input and shift
            // out the bytes before `i` (no copy)
            let off = 64 - chunk.len();
            let (q, s, o, c) = masks(&b[b.len() - 64..]);
            (q >> off, s >> off, o >> off, c >> off)
        } else {
            let mut block = [b' '; 64];
            block[..chunk.len()].copy_from_slice(chunk);
            masks(&block)
        };
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
        let instr = pxor(quote) ^ carry;
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
    fn prefix_xor_variants_agree() {
        let mut x = 0x0123_4567_89AB_CDEFu64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: has_avx2 checks PCLMULQDQ too.
                assert_eq!(unsafe { prefix_xor_clmul(x) }, prefix_xor(x));
            }
            assert_eq!(prefix_xor(x) >> 63, u64::from(x.count_ones() % 2 == 1));
        }
    }

    #[test]
    fn scalar_ends() {
        let text = b"12345678901234567890.5e3,1]  true}null\t-0.25 x";
        for start in 0..text.len() {
            let want = text[start..]
                .iter()
                .position(|&c| matches!(c, b',' | b'}' | b']') || !(b'!'..0x80).contains(&c))
                .map_or(text.len(), |p| start + p);
            assert_eq!(scalar_end(text, start), want, "start {start}");
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

//! Number formatting: `$formatNumber` (XPath `format-number` pictures), `$formatBase`,
//! `$formatInteger` / `$parseInteger` (XPath `format-integer` pictures).

use crate::error::Error;
use crate::value::Value;

/// `$formatBase`: JavaScript's `Number.prototype.toString(radix)` for an integral value
/// (digits beyond double precision come out as zeros, as in V8).
pub(crate) fn to_radix(n: f64, radix: u32) -> String {
    let r = radix as f64;
    let neg = n < 0.0;
    let mut v = n.abs();
    let mut out: Vec<char> = Vec::new();
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    while v / r >= TWO_53 {
        v /= r;
        out.push('0');
    }
    loop {
        let rem = v % r;
        out.push(std::char::from_digit(rem as u32, radix).unwrap_or('0'));
        v = (v - rem) / r;
        if v <= 0.0 {
            break;
        }
    }
    if neg {
        out.push('-');
    }
    out.iter().rev().collect()
}

const DECIMAL_GROUPS: &[u32] = &[
    0x30, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
    0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10,
];

/// Letter case of a word/letter/roman presentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    Upper,
    Lower,
    Title,
}

/// The primary format of an integer picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Primary {
    Decimal,
    Letters,
    Roman,
    Words,
    Sequence(String),
}

/// An analysed integer picture.
#[derive(Clone, Debug)]
pub(crate) struct IntegerFormat {
    pub primary: Primary,
    pub case: Case,
    pub ordinal: bool,
    pub zero_code: u32,
    pub mandatory_digits: usize,
    pub optional_digits: usize,
    /// Regular grouping: (interval, separator).
    pub regular: Option<(usize, char)>,
    /// Irregular grouping separators: (position from the right, separator).
    pub separators: Vec<(usize, char)>,
    /// Exact digit count when parsing adjacent numeric components.
    pub parse_width: Option<usize>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn regular_interval(positions: &[usize]) -> usize {
    if positions.is_empty() {
        return 0;
    }
    let factor = positions.iter().copied().fold(0, gcd);
    if factor == 0 {
        return 0;
    }
    for i in 1..=positions.len() {
        if !positions.contains(&(i * factor)) {
            return 0;
        }
    }
    factor
}

/// Analyse an integer picture such as `#,##0`, `w`, `I`, `1;o`.
pub(crate) fn analyse_integer_picture(picture: &str) -> Result<IntegerFormat, Error> {
    let mut f = IntegerFormat {
        primary: Primary::Decimal,
        case: Case::Lower,
        ordinal: false,
        zero_code: 0x30,
        mandatory_digits: 0,
        optional_digits: 0,
        regular: None,
        separators: Vec::new(),
        parse_width: None,
    };
    let primary = match picture.rfind(';') {
        None => picture,
        Some(i) => {
            if picture[i + 1..].starts_with('o') {
                f.ordinal = true;
            }
            &picture[..i]
        }
    };
    match primary {
        "A" => {
            f.case = Case::Upper;
            f.primary = Primary::Letters;
        }
        "a" => f.primary = Primary::Letters,
        "I" => {
            f.case = Case::Upper;
            f.primary = Primary::Roman;
        }
        "i" => f.primary = Primary::Roman,
        "W" => {
            f.case = Case::Upper;
            f.primary = Primary::Words;
        }
        "Ww" => {
            f.case = Case::Title;
            f.primary = Primary::Words;
        }
        "w" => f.primary = Primary::Words,
        _ => {
            let mut zero: Option<u32> = None;
            let mut seps: Vec<(usize, char)> = Vec::new();
            let mut position = 0;
            for c in primary.chars().rev() {
                let cp = c as u32;
                if let Some(g) = DECIMAL_GROUPS.iter().find(|g| cp >= **g && cp <= **g + 9) {
                    f.mandatory_digits += 1;
                    position += 1;
                    match zero {
                        None => zero = Some(*g),
                        Some(z) if z != *g => return Err(Error::code("D3131", None)),
                        _ => {}
                    }
                } else if c == '#' {
                    position += 1;
                    f.optional_digits += 1;
                } else {
                    seps.push((position, c));
                }
            }
            if f.mandatory_digits > 0 {
                f.zero_code = zero.unwrap_or(0x30);
                let same_char = seps.iter().all(|s| s.1 == seps[0].1);
                let positions: Vec<usize> = seps.iter().map(|s| s.0).collect();
                let reg = if same_char {
                    regular_interval(&positions)
                } else {
                    0
                };
                if reg > 0 {
                    f.regular = Some((reg, seps[0].1));
                } else {
                    f.separators = seps;
                }
            } else {
                f.primary = Primary::Sequence(primary.to_string());
            }
        }
    }
    Ok(f)
}

const FEW: [&str; 20] = [
    "Zero",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
];
const ORDINALS: [&str; 20] = [
    "Zeroth",
    "First",
    "Second",
    "Third",
    "Fourth",
    "Fifth",
    "Sixth",
    "Seventh",
    "Eighth",
    "Ninth",
    "Tenth",
    "Eleventh",
    "Twelfth",
    "Thirteenth",
    "Fourteenth",
    "Fifteenth",
    "Sixteenth",
    "Seventeenth",
    "Eighteenth",
    "Nineteenth",
];
const DECADES: [&str; 8] = [
    "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety",
];
const MAGNITUDES: [&str; 4] = ["Thousand", "Million", "Billion", "Trillion"];

fn words(num: f64, prev: bool, ord: bool) -> String {
    if num <= 19.0 {
        let i = num as usize;
        let w = if ord { ORDINALS[i] } else { FEW[i] };
        return format!("{}{}", if prev { " and " } else { "" }, w);
    }
    if num < 100.0 {
        let tens = (num / 10.0).floor() as usize;
        let rem = num % 10.0;
        let mut w = format!("{}{}", if prev { " and " } else { "" }, DECADES[tens - 2]);
        if rem > 0.0 {
            w.push('-');
            w.push_str(&words(rem, false, ord));
        } else if ord {
            w.pop();
            w.push_str("ieth");
        }
        return w;
    }
    if num < 1000.0 {
        let hundreds = (num / 100.0).floor() as usize;
        let rem = num % 100.0;
        let mut w = format!("{}{} Hundred", if prev { ", " } else { "" }, FEW[hundreds]);
        if rem > 0.0 {
            w.push_str(&words(rem, true, ord));
        } else if ord {
            w.push_str("th");
        }
        return w;
    }
    let mut mag = (num.log10() / 3.0).floor() as usize;
    if mag > MAGNITUDES.len() {
        mag = MAGNITUDES.len();
    }
    let factor = 10f64.powi((mag * 3) as i32);
    let mant = (num / factor).floor();
    let rem = num - mant * factor;
    let mut w = format!(
        "{}{} {}",
        if prev { ", " } else { "" },
        words(mant, false, false),
        MAGNITUDES[mag - 1]
    );
    if rem > 0.0 {
        w.push_str(&words(rem, true, ord));
    } else if ord {
        w.push_str("th");
    }
    w
}

fn to_roman(mut v: u64) -> String {
    const R: [(u64, &str); 13] = [
        (1000, "m"),
        (900, "cm"),
        (500, "d"),
        (400, "cd"),
        (100, "c"),
        (90, "xc"),
        (50, "l"),
        (40, "xl"),
        (10, "x"),
        (9, "ix"),
        (5, "v"),
        (4, "iv"),
        (1, "i"),
    ];
    let mut out = String::new();
    for (n, s) in R {
        while v >= n {
            out.push_str(s);
            v -= n;
        }
    }
    out
}

fn from_roman(s: &str) -> f64 {
    let mut total = 0.0;
    let mut max = 1.0;
    for c in s.chars().rev() {
        let v = match c.to_ascii_uppercase() {
            'M' => 1000.0,
            'D' => 500.0,
            'C' => 100.0,
            'L' => 50.0,
            'X' => 10.0,
            'V' => 5.0,
            'I' => 1.0,
            _ => 0.0,
        };
        if v < max {
            total -= v;
        } else {
            max = v;
            total += v;
        }
    }
    total
}

fn to_letters(mut v: u64, a: char) -> String {
    let mut out = Vec::new();
    while v > 0 {
        out.push(char::from_u32(((v - 1) % 26) as u32 + a as u32).unwrap_or(a));
        v = (v - 1) / 26;
    }
    out.iter().rev().collect()
}

fn from_letters(s: &str, a: char) -> f64 {
    let mut total = 0.0;
    for (i, c) in s.chars().rev().enumerate() {
        total += (c as u32 as f64 - a as u32 as f64 + 1.0) * 26f64.powi(i as i32);
    }
    total
}

fn integer_digits(v: f64) -> String {
    if v.abs() < 1e21 {
        format!("{:.0}", v)
    } else {
        crate::value::js_number_string(v)
    }
}

/// Format a (floored) integer with an analysed picture.
pub(crate) fn format_integer_with(value: f64, f: &IntegerFormat) -> Result<String, Error> {
    let negative = value < 0.0;
    let v = value.abs();
    let mut s = match &f.primary {
        Primary::Letters => to_letters(v as u64, if f.case == Case::Upper { 'A' } else { 'a' }),
        Primary::Roman => {
            let r = to_roman(v as u64);
            if f.case == Case::Upper {
                r.to_uppercase()
            } else {
                r
            }
        }
        Primary::Words => {
            let w = words(v, false, f.ordinal);
            match f.case {
                Case::Upper => w.to_uppercase(),
                Case::Lower => w.to_lowercase(),
                Case::Title => w,
            }
        }
        Primary::Decimal => {
            let mut s = integer_digits(v);
            let len = s.chars().count();
            if f.mandatory_digits > len {
                s = "0".repeat(f.mandatory_digits - len) + &s;
            }
            if f.zero_code != 0x30 {
                s = s
                    .chars()
                    .map(|c| char::from_u32(c as u32 + f.zero_code - 0x30).unwrap_or(c))
                    .collect();
            }
            let mut chars: Vec<char> = s.chars().collect();
            if let Some((interval, sep)) = f.regular {
                let n = (chars.len().saturating_sub(1)) / interval;
                for i in (1..=n).rev() {
                    let pos = chars.len() - i * interval;
                    chars.insert(pos, sep);
                }
            } else {
                for (pos, sep) in f.separators.iter().rev() {
                    if *pos <= chars.len() {
                        let at = chars.len() - pos;
                        chars.insert(at, *sep);
                    }
                }
            }
            let mut s: String = chars.into_iter().collect();
            if f.ordinal {
                let cs: Vec<char> = s.chars().collect();
                let last = cs.last().copied().unwrap_or('0');
                let tens = cs.len() > 1 && cs[cs.len() - 2] == '1';
                let suffix = match last {
                    '1' if !tens => "st",
                    '2' if !tens => "nd",
                    '3' if !tens => "rd",
                    _ => "th",
                };
                s.push_str(suffix);
            }
            s
        }
        Primary::Sequence(tok) => {
            return Err(Error::value("D3130", None, crate::error::quote(tok)));
        }
    };
    if negative {
        s.insert(0, '-');
    }
    Ok(s)
}

/// `$formatInteger(value, picture)`.
pub(crate) fn format_integer(n: f64, picture: &str) -> Result<String, Error> {
    let f = analyse_integer_picture(picture)?;
    format_integer_with(n.floor(), &f)
}

fn word_value(w: &str) -> Option<f64> {
    for (i, x) in FEW.iter().enumerate() {
        if x.eq_ignore_ascii_case(w) {
            return Some(i as f64);
        }
    }
    for (i, x) in ORDINALS.iter().enumerate() {
        if x.eq_ignore_ascii_case(w) {
            return Some(i as f64);
        }
    }
    for (i, x) in DECADES.iter().enumerate() {
        let v = ((i + 2) * 10) as f64;
        if x.eq_ignore_ascii_case(w) {
            return Some(v);
        }
        let ieth = format!("{}ieth", &x[..x.len() - 1]);
        if ieth.eq_ignore_ascii_case(w) {
            return Some(v);
        }
    }
    if w.eq_ignore_ascii_case("hundred") || w.eq_ignore_ascii_case("hundredth") {
        return Some(100.0);
    }
    for (i, x) in MAGNITUDES.iter().enumerate() {
        let v = 10f64.powi(((i + 1) * 3) as i32);
        if x.eq_ignore_ascii_case(w) || format!("{}th", x).eq_ignore_ascii_case(w) {
            return Some(v);
        }
    }
    None
}

fn words_to_number(text: &str) -> f64 {
    let lower = text.to_lowercase();
    let normalised = lower
        .replace(", ", " ")
        .replace(" and ", " ")
        .replace('-', " ");
    let mut segs: Vec<f64> = vec![0.0];
    for part in normalised.split(' ') {
        let v = match word_value(part) {
            Some(v) => v,
            None => return f64::NAN,
        };
        if v < 100.0 {
            let mut top = segs.pop().unwrap_or(0.0);
            if top >= 1000.0 {
                segs.push(top);
                top = 0.0;
            }
            segs.push(top + v);
        } else {
            let top = segs.pop().unwrap_or(0.0);
            segs.push(top * v);
        }
    }
    segs.iter().sum()
}

/// Parse an integer according to an analysed picture (no surrounding text allowed).
pub(crate) fn parse_integer_with(s: &str, f: &IntegerFormat) -> Result<Option<f64>, Error> {
    Ok(match &f.primary {
        Primary::Letters => Some(from_letters(
            s,
            if f.case == Case::Upper { 'A' } else { 'a' },
        )),
        Primary::Roman => Some(from_roman(s)),
        Primary::Words => {
            let n = words_to_number(s);
            if n.is_nan() {
                None
            } else {
                Some(n)
            }
        }
        Primary::Decimal => {
            let mut digits = s.to_string();
            if f.ordinal {
                for suf in ["st", "nd", "rd", "th"] {
                    if let Some(d) = digits.strip_suffix(suf) {
                        digits = d.to_string();
                        break;
                    }
                }
            }
            if let Some((_, sep)) = f.regular {
                digits = digits.replace(sep, "");
            } else {
                for (_, sep) in &f.separators {
                    digits = digits.replace(*sep, "");
                }
            }
            if f.zero_code != 0x30 {
                digits = digits
                    .chars()
                    .map(|c| {
                        char::from_u32((c as u32).wrapping_sub(f.zero_code) + 0x30).unwrap_or(c)
                    })
                    .collect();
            }
            let lead: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
            lead.parse::<f64>().ok()
        }
        Primary::Sequence(tok) => {
            return Err(Error::value("D3130", None, crate::error::quote(tok)))
        }
    })
}

/// `$parseInteger(string, picture)`.
pub(crate) fn parse_integer(s: &str, picture: &str) -> Result<Option<f64>, Error> {
    let f = analyse_integer_picture(picture)?;
    parse_integer_with(s, &f)
}

/// A regex fragment matching an integer written with this picture.
pub(crate) fn integer_regex(f: &IntegerFormat) -> Result<String, Error> {
    Ok(match &f.primary {
        Primary::Letters => {
            if f.case == Case::Upper {
                "[A-Z]+".into()
            } else {
                "[a-z]+".into()
            }
        }
        Primary::Roman => {
            if f.case == Case::Upper {
                "[MDCLXVI]+".into()
            } else {
                "[mdclxvi]+".into()
            }
        }
        Primary::Words => {
            let mut alts: Vec<String> = Vec::new();
            for w in FEW.iter().chain(ORDINALS.iter()).chain(DECADES.iter()) {
                alts.push(w.to_lowercase());
            }
            for w in DECADES.iter() {
                alts.push(format!("{}ieth", &w[..w.len() - 1]).to_lowercase());
            }
            alts.push("hundredth".into());
            alts.push("hundred".into());
            for w in MAGNITUDES.iter() {
                alts.push(format!("{}th", w).to_lowercase());
                alts.push(w.to_lowercase());
            }
            alts.push("and".into());
            alts.push("[\\-, ]".into());
            format!("(?:{})+", alts.join("|"))
        }
        Primary::Decimal => {
            let mut r = String::from("[0-9]");
            match f.parse_width {
                Some(w) => r.push_str(&format!("{{{}}}", w)),
                None => r.push('+'),
            }
            if f.ordinal {
                r.push_str("(?:th|st|nd|rd)");
            }
            r
        }
        Primary::Sequence(tok) => {
            return Err(Error::value("D3130", None, crate::error::quote(tok)))
        }
    })
}

struct Props {
    decimal: char,
    grouping: char,
    exponent: char,
    minus: String,
    percent: char,
    per_mille: char,
    zero: char,
    digit: char,
    pattern_sep: char,
}

struct Parts {
    prefix: String,
    suffix: String,
    active: Vec<char>,
    mantissa: Vec<char>,
    exponent: Option<Vec<char>>,
    integer: Vec<char>,
    fractional: Vec<char>,
    sub: Vec<char>,
}

fn first_char(v: &Value, key: &str, default: char) -> char {
    match v {
        Value::Object(o) => o
            .get(key)
            .and_then(|x| x.as_str())
            .and_then(|s| s.chars().next())
            .unwrap_or(default),
        _ => default,
    }
}

/// `$formatNumber(number, picture, options)`.
pub(crate) fn format_number(value: f64, picture: &str, options: &Value) -> Result<String, Error> {
    let p = Props {
        decimal: first_char(options, "decimal-separator", '.'),
        grouping: first_char(options, "grouping-separator", ','),
        exponent: first_char(options, "exponent-separator", 'e'),
        minus: match options {
            Value::Object(o) => o
                .get("minus-sign")
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| "-".into()),
            _ => "-".into(),
        },
        percent: first_char(options, "percent", '%'),
        per_mille: first_char(options, "per-mille", '\u{2030}'),
        zero: first_char(options, "zero-digit", '0'),
        digit: first_char(options, "digit", '#'),
        pattern_sep: first_char(options, "pattern-separator", ';'),
    };
    let family: Vec<char> = (0..10)
        .filter_map(|i| char::from_u32(p.zero as u32 + i))
        .collect();
    let is_digit = |c: char| family.contains(&c);
    let is_active = |c: char| {
        is_digit(c)
            || c == p.decimal
            || c == p.exponent
            || c == p.grouping
            || c == p.digit
            || c == p.pattern_sep
    };
    let subs: Vec<&str> = picture.split(p.pattern_sep).collect();
    if subs.len() > 2 {
        return Err(Error::code("D3080", None));
    }
    let split = |sub: &str| -> Parts {
        let sc: Vec<char> = sub.chars().collect();
        let pre_end = sc
            .iter()
            .position(|c| is_active(*c) && *c != p.exponent)
            .unwrap_or(sc.len());
        let prefix: String = if pre_end == sc.len() {
            String::new()
        } else {
            sc[..pre_end].iter().collect()
        };
        let suf_start = sc
            .iter()
            .rposition(|c| is_active(*c) && *c != p.exponent)
            .map(|i| i + 1);
        let suffix: String = match suf_start {
            Some(i) => sc[i..].iter().collect(),
            None => String::new(),
        };
        let plen = prefix.chars().count();
        let slen = suffix.chars().count();
        let active: Vec<char> = sc[plen..sc.len().saturating_sub(slen).max(plen)].to_vec();
        let exp_pos = sc
            .iter()
            .enumerate()
            .skip(plen)
            .find(|(_, c)| **c == p.exponent)
            .map(|(i, _)| i);
        let (mantissa, exponent) = match exp_pos {
            Some(e) if e <= sc.len() - slen => {
                let rel = e - plen;
                (
                    active[..rel.min(active.len())].to_vec(),
                    Some(active[(rel + 1).min(active.len())..].to_vec()),
                )
            }
            _ => (active.clone(), None),
        };
        let (integer, fractional) = match mantissa.iter().position(|c| *c == p.decimal) {
            None => (mantissa.clone(), suffix.chars().collect()),
            Some(d) => (mantissa[..d].to_vec(), mantissa[d + 1..].to_vec()),
        };
        Parts {
            prefix,
            suffix,
            active,
            mantissa,
            exponent,
            integer,
            fractional,
            sub: sc,
        }
    };
    let parts: Vec<Parts> = subs.iter().map(|s| split(s)).collect();
    for part in &parts {
        let sub = &part.sub;
        let count = |c: char| sub.iter().filter(|x| **x == c).count();
        let mut error = None;
        if count(p.decimal) > 1 {
            error = Some("D3081");
        }
        if count(p.percent) > 1 {
            error = Some("D3082");
        }
        if count(p.per_mille) > 1 {
            error = Some("D3083");
        }
        if count(p.percent) > 0 && count(p.per_mille) > 0 {
            error = Some("D3084");
        }
        if !part.mantissa.iter().any(|c| is_digit(*c) || *c == p.digit) {
            error = Some("D3085");
        }
        if part.active.iter().any(|c| !is_active(*c)) {
            error = Some("D3086");
        }
        match sub.iter().position(|c| *c == p.decimal) {
            Some(d) => {
                if (d > 0 && sub[d - 1] == p.grouping) || sub.get(d + 1) == Some(&p.grouping) {
                    error = Some("D3087");
                }
            }
            None => {
                if part.integer.last() == Some(&p.grouping) {
                    error = Some("D3088");
                }
            }
        }
        if sub
            .windows(2)
            .any(|w| w[0] == p.grouping && w[1] == p.grouping)
        {
            error = Some("D3089");
        }
        if let Some(od) = part.integer.iter().position(|c| *c == p.digit) {
            if part.integer[..od].iter().any(|c| is_digit(*c)) {
                error = Some("D3090");
            }
        }
        if let Some(od) = part.fractional.iter().rposition(|c| *c == p.digit) {
            if part.fractional[od..].iter().any(|c| is_digit(*c)) {
                error = Some("D3091");
            }
        }
        if let Some(e) = &part.exponent {
            if !e.is_empty() && (count(p.percent) > 0 || count(p.per_mille) > 0) {
                error = Some("D3092");
            }
            if e.is_empty() || e.iter().any(|c| !is_digit(*c)) {
                error = Some("D3093");
            }
        }
        if let Some(code) = error {
            return Err(Error::code(code, None));
        }
    }
    struct Pic {
        int_groups: Vec<usize>,
        regular: usize,
        min_int: usize,
        scaling: usize,
        prefix: String,
        frac_groups: Vec<usize>,
        min_frac: usize,
        max_frac: usize,
        min_exp: usize,
        suffix: String,
        sub: Vec<char>,
    }
    let analyse = |part: &Parts| -> Pic {
        let groups = |chars: &[char], to_left: bool| -> Vec<usize> {
            let mut out = Vec::new();
            for (i, c) in chars.iter().enumerate() {
                if *c == p.grouping {
                    let side = if to_left { &chars[..i] } else { &chars[i..] };
                    out.push(
                        side.iter()
                            .filter(|c| is_digit(**c) || **c == p.digit)
                            .count(),
                    );
                }
            }
            out
        };
        let int_groups = groups(&part.integer, false);
        let regular = regular_interval(&int_groups);
        let frac_groups = groups(&part.fractional, true);
        let mut min_int = part.integer.iter().filter(|c| is_digit(**c)).count();
        let scaling = min_int;
        let mut min_frac = part.fractional.iter().filter(|c| is_digit(**c)).count();
        let mut max_frac = part
            .fractional
            .iter()
            .filter(|c| is_digit(**c) || **c == p.digit)
            .count();
        let exp_present = part.exponent.is_some();
        if min_int == 0 && max_frac == 0 {
            if exp_present {
                min_frac = 1;
                max_frac = 1;
            } else {
                min_int = 1;
            }
        }
        if exp_present && min_int == 0 && part.integer.contains(&p.digit) {
            min_int = 1;
        }
        if min_int == 0 && min_frac == 0 {
            min_frac = 1;
        }
        let min_exp = part
            .exponent
            .as_ref()
            .map(|e| e.iter().filter(|c| is_digit(**c)).count())
            .unwrap_or(0);
        Pic {
            int_groups,
            regular,
            min_int,
            scaling,
            prefix: part.prefix.clone(),
            frac_groups,
            min_frac,
            max_frac,
            min_exp,
            suffix: part.suffix.clone(),
            sub: part.sub.clone(),
        }
    };
    let mut pics: Vec<Pic> = parts.iter().map(analyse).collect();
    if pics.len() == 1 {
        let mut neg = analyse(&parts[0]);
        neg.prefix = format!("{}{}", p.minus, neg.prefix);
        pics.push(neg);
    }
    let pic = if value >= 0.0 { &pics[0] } else { &pics[1] };
    let adjusted = if pic.sub.contains(&p.percent) {
        value * 100.0
    } else if pic.sub.contains(&p.per_mille) {
        value * 1000.0
    } else {
        value
    };
    let mut mantissa = adjusted;
    let mut exponent: Option<i32> = None;
    if pic.min_exp != 0 {
        let max_m = 10f64.powi(pic.scaling as i32);
        let min_m = 10f64.powi(pic.scaling as i32 - 1);
        let mut e = 0;
        if mantissa != 0.0 {
            while mantissa.abs() < min_m {
                mantissa *= 10.0;
                e -= 1;
            }
            while mantissa.abs() > max_m {
                mantissa /= 10.0;
                e += 1;
            }
        }
        exponent = Some(e);
    }
    let rounded = crate::functions::round_half_even(mantissa, pic.max_frac as i32);
    let make_string = |v: f64, dp: usize| -> String {
        // Number.prototype.toFixed: exponent notation from 1e21 up
        let s = if v.abs() >= 1e21 {
            crate::value::js_number_string(v.abs())
        } else {
            format!("{:.*}", dp, v.abs())
        };
        if p.zero != '0' {
            s.chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        family[(c as u32 - 48) as usize]
                    } else {
                        c
                    }
                })
                .collect()
        } else {
            s
        }
    };
    let mut sv: Vec<char> = make_string(rounded, pic.max_frac).chars().collect();
    match sv.iter().position(|c| *c == '.') {
        None => sv.push(p.decimal),
        Some(i) => sv[i] = p.decimal,
    }
    while sv.first() == Some(&p.zero) {
        sv.remove(0);
    }
    while sv.last() == Some(&p.zero) {
        sv.pop();
    }
    let dpos = sv.iter().position(|c| *c == p.decimal).unwrap_or(sv.len());
    if pic.min_int > dpos {
        for _ in 0..pic.min_int - dpos {
            sv.insert(0, p.zero);
        }
    }
    let dpos = sv.iter().position(|c| *c == p.decimal).unwrap_or(sv.len());
    let frac_len = sv.len() - dpos - 1;
    if pic.min_frac > frac_len {
        for _ in 0..pic.min_frac - frac_len {
            sv.push(p.zero);
        }
    }
    let mut dpos = sv.iter().position(|c| *c == p.decimal).unwrap_or(sv.len());
    if let Some(count) = dpos.saturating_sub(1).checked_div(pic.regular) {
        for g in 1..=count {
            let at = dpos - g * pic.regular;
            sv.insert(at, p.grouping);
        }
    } else {
        for pos in &pic.int_groups {
            // JavaScript `slice` semantics: a negative index counts from the end
            let mut at = dpos as isize - *pos as isize;
            if at < 0 {
                at += sv.len() as isize;
            }
            let at = (at.max(0) as usize).min(sv.len());
            sv.insert(at, p.grouping);
            dpos += 1;
        }
    }
    let dpos = sv.iter().position(|c| *c == p.decimal).unwrap_or(sv.len());
    for pos in &pic.frac_groups {
        let at = pos + dpos + 1;
        if at <= sv.len() {
            sv.insert(at, p.grouping);
        }
    }
    let dpos = sv.iter().position(|c| *c == p.decimal).unwrap_or(sv.len());
    if !pic.sub.contains(&p.decimal) || dpos + 1 == sv.len() {
        sv.pop();
    }
    let mut out: String = sv.into_iter().collect();
    if let Some(e) = exponent {
        let mut es = make_string(e as f64, 0);
        let len = es.chars().count();
        if pic.min_exp > len {
            es = p.zero.to_string().repeat(pic.min_exp - len) + &es;
        }
        out.push(p.exponent);
        if e < 0 {
            out.push_str(&p.minus);
        }
        out.push_str(&es);
    }
    Ok(format!("{}{}{}", pic.prefix, out, pic.suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(format_integer(1234567.0, "#,##0").unwrap(), "1,234,567");
        assert_eq!(format_integer(7.0, "w").unwrap(), "seven");
        assert_eq!(format_integer(1999.0, "I").unwrap(), "MCMXCIX");
        assert_eq!(format_integer(23.0, "1;o").unwrap(), "23rd");
        assert_eq!(format_integer(28.0, "A").unwrap(), "AB");
        assert_eq!(parse_integer("MCMXCIX", "I").unwrap(), Some(1999.0));
        assert_eq!(parse_integer("twenty one", "w").unwrap(), Some(21.0));
    }

    #[test]
    fn numbers() {
        let none = Value::Undefined;
        assert_eq!(
            format_number(1234.5678, "#,##0.00", &none).unwrap(),
            "1,234.57"
        );
        assert_eq!(format_number(0.5, "0%", &none).unwrap(), "50%");
        assert_eq!(format_number(-12.3, "0.00", &none).unwrap(), "-12.30");
        assert_eq!(
            format_number(1.0, "#;#;#", &none).unwrap_err().code,
            "D3080"
        );
    }

    #[test]
    fn radix() {
        assert_eq!(to_radix(255.0, 16), "ff");
        assert_eq!(to_radix(-5.0, 2), "-101");
        assert_eq!(to_radix(0.0, 2), "0");
    }
}

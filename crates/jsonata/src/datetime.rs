//! Date/time: ISO 8601 parsing and XPath-style picture strings for `$fromMillis`,
//! `$toMillis` and `$now`. All arithmetic is on UTC milliseconds; no system clock.

use crate::error::Error;
use crate::format::{
    analyse_integer_picture, format_integer_with, integer_regex, parse_integer_with, IntegerFormat,
    Primary,
};

const DAY_MS: i64 = 86_400_000;
const DAYS: [&str; 8] = [
    "",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Days since 1970-01-01 for a proleptic Gregorian date (month 1..=12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1..=12, day) for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `Date.UTC(year, month0, day, h, m, s, ms)` with JavaScript's overflow normalisation.
fn date_utc(y: i64, month0: i64, d: i64, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
    let y = y + month0.div_euclid(12);
    let m = month0.rem_euclid(12) + 1;
    let days = days_from_civil(y, m, 1) + d - 1;
    days * DAY_MS + h * 3_600_000 + mi * 60_000 + s * 1000 + ms
}

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug)]
struct Tm {
    year: i64,
    month: i64, // 1..=12
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    weekday: i64, // 1 = Monday .. 7 = Sunday
    millis_total: i64,
}

fn tm(ms: i64) -> Tm {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let wd = (days + 3).rem_euclid(7) + 1; // 1970-01-01 was a Thursday
    Tm {
        year,
        month,
        day,
        hour: rem / 3_600_000,
        minute: rem / 60_000 % 60,
        second: rem / 1000 % 60,
        millis: rem % 1000,
        weekday: wd,
        millis_total: ms,
    }
}

/// Start (UTC millis) of week 1 of the month `month0` of `year` (ISO rule: the week
/// containing the first Thursday).
fn start_of_first_week(year: i64, month0: i64) -> i64 {
    let first = date_utc(year, month0, 1, 0, 0, 0, 0);
    let mut dow = (first.div_euclid(DAY_MS) + 4).rem_euclid(7); // 0 = Sunday
    if dow == 0 {
        dow = 7;
    }
    if dow > 4 {
        first + (8 - dow) * DAY_MS
    } else {
        first - (dow - 1) * DAY_MS
    }
}

fn delta_weeks(start: i64, end: i64) -> f64 {
    (end - start) as f64 / (DAY_MS * 7) as f64 + 1.0
}

fn component(t: &Tm, c: char) -> i64 {
    match c {
        'Y' => t.year,
        'M' => t.month,
        'D' => t.day,
        'd' => {
            let today = date_utc(t.year, t.month - 1, t.day, 0, 0, 0, 0);
            let jan1 = date_utc(t.year, 0, 1, 0, 0, 0, 0);
            (today - jan1) / DAY_MS + 1
        }
        'F' => t.weekday,
        'W' => {
            let start = start_of_first_week(t.year, 0);
            let today = date_utc(t.year, t.month - 1, t.day, 0, 0, 0, 0);
            let mut week = delta_weeks(start, today);
            if week > 52.0 {
                if today >= start_of_first_week(t.year + 1, 0) {
                    week = 1.0;
                }
            } else if week < 1.0 {
                week = delta_weeks(start_of_first_week(t.year - 1, 0), today);
            }
            week.floor() as i64
        }
        'w' => {
            let m0 = t.month - 1;
            let start = start_of_first_week(t.year, m0);
            let today = date_utc(t.year, m0, t.day, 0, 0, 0, 0);
            let mut week = delta_weeks(start, today);
            if week > 4.0 {
                let (ny, nm) = if m0 == 11 {
                    (t.year + 1, 0)
                } else {
                    (t.year, m0 + 1)
                };
                if today >= start_of_first_week(ny, nm) {
                    week = 1.0;
                }
            } else if week < 1.0 {
                let (py, pm) = if m0 == 0 {
                    (t.year - 1, 11)
                } else {
                    (t.year, m0 - 1)
                };
                week = delta_weeks(start_of_first_week(py, pm), today);
            }
            week.floor() as i64
        }
        'X' => {
            let start = start_of_first_week(t.year, 0);
            let end = start_of_first_week(t.year + 1, 0);
            if t.millis_total < start {
                t.year - 1
            } else if t.millis_total >= end {
                t.year + 1
            } else {
                t.year
            }
        }
        'x' => {
            let m0 = t.month - 1;
            let start = start_of_first_week(t.year, m0);
            let (ny, nm) = if m0 == 11 {
                (t.year + 1, 0)
            } else {
                (t.year, m0 + 1)
            };
            let end = start_of_first_week(ny, nm);
            if t.millis_total < start {
                if m0 == 0 {
                    12
                } else {
                    m0
                }
            } else if t.millis_total >= end {
                nm + 1
            } else {
                m0 + 1
            }
        }
        'H' => t.hour,
        'h' => {
            let h = t.hour % 12;
            if h == 0 {
                12
            } else {
                h
            }
        }
        'm' => t.minute,
        's' => t.second,
        'f' => t.millis,
        _ => 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Names {
    Upper,
    Lower,
    Title,
}

#[derive(Clone, Debug)]
struct Marker {
    component: char,
    pres2: Option<char>,
    names: Option<Names>,
    width: Option<(Option<usize>, Option<usize>)>,
    int_format: Option<IntegerFormat>,
    year_digits: Option<usize>,
}

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Marker(Box<Marker>),
}

fn default_presentation(c: char) -> Option<&'static str> {
    Some(match c {
        'Y' | 'M' | 'D' | 'd' | 'W' | 'w' | 'X' | 'x' | 'H' | 'h' | 'f' => "1",
        'F' | 'P' | 'C' | 'E' => "n",
        'm' | 's' => "01",
        'Z' | 'z' => "01:01",
        _ => return None,
    })
}

fn analyse_picture(picture: &str) -> Result<Vec<Part>, Error> {
    let chars: Vec<char> = picture.chars().collect();
    let mut parts: Vec<Part> = Vec::new();
    let add_literal = |parts: &mut Vec<Part>, s: &[char]| {
        if !s.is_empty() {
            let lit: String = s.iter().collect();
            parts.push(Part::Literal(lit.replace("]]", "]")));
        }
    };
    let (mut start, mut pos) = (0, 0);
    while pos < chars.len() {
        if chars[pos] == '[' {
            if chars.get(pos + 1) == Some(&'[') {
                add_literal(&mut parts, &chars[start..pos]);
                parts.push(Part::Literal("[".into()));
                pos += 2;
                start = pos;
                continue;
            }
            add_literal(&mut parts, &chars[start..pos]);
            start = pos;
            let close = chars[start..]
                .iter()
                .position(|c| *c == ']')
                .map(|i| i + start);
            let close = close.ok_or_else(|| Error::code("D3135", None))?;
            pos = close;
            let marker: String = chars[start + 1..close]
                .iter()
                .filter(|c| !c.is_whitespace())
                .collect();
            let mc: Vec<char> = marker.chars().collect();
            let component = mc.first().copied().unwrap_or(' ');
            let (pres, width) = match marker.rfind(',') {
                Some(comma) => {
                    let wm = &marker[comma + 1..];
                    let parse_w = |s: &str| -> Option<usize> {
                        if s == "*" || s.is_empty() {
                            None
                        } else {
                            let d: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
                            d.parse().ok()
                        }
                    };
                    let (min, max) = match wm.find('-') {
                        None => (parse_w(wm), None),
                        Some(d) => (parse_w(&wm[..d]), parse_w(&wm[d + 1..])),
                    };
                    let pres: String = marker[component.len_utf8()..comma].to_string();
                    (pres, Some((min, max)))
                }
                None => (marker.chars().skip(1).collect::<String>(), None),
            };
            let pc: Vec<char> = pres.chars().collect();
            let (pres1, pres2) = if pc.len() == 1 {
                (pres.clone(), None)
            } else if pc.len() > 1 {
                let last = pc[pc.len() - 1];
                if "atco".contains(last) {
                    (pc[..pc.len() - 1].iter().collect(), Some(last))
                } else {
                    (pres.clone(), None)
                }
            } else {
                match default_presentation(component) {
                    Some(d) => (d.to_string(), None),
                    None => {
                        return Err(Error::value(
                            "D3132",
                            None,
                            crate::error::quote(&component.to_string()),
                        ))
                    }
                }
            };
            if default_presentation(component).is_none() {
                return Err(Error::value(
                    "D3132",
                    None,
                    crate::error::quote(&component.to_string()),
                ));
            }
            let mut m = Marker {
                component,
                pres2,
                names: None,
                width,
                int_format: None,
                year_digits: None,
            };
            if pres1.starts_with('n') {
                m.names = Some(Names::Lower);
            } else if pres1.starts_with('N') {
                m.names = Some(if pres1.chars().nth(1) == Some('n') {
                    Names::Title
                } else {
                    Names::Upper
                });
            } else if "YMDdFWwXxHhmsf".contains(component) {
                let mut ip = pres1.clone();
                if let Some(p2) = pres2 {
                    ip.push(';');
                    ip.push(p2);
                }
                let mut f = analyse_integer_picture(&ip)?;
                if let Some((Some(min), _)) = width {
                    if f.mandatory_digits < min {
                        f.mandatory_digits = min;
                    }
                }
                if component == 'Y' {
                    if let Some((_, Some(max))) = width {
                        m.year_digits = Some(max);
                        f.mandatory_digits = max;
                    } else {
                        let w = f.mandatory_digits + f.optional_digits;
                        if w >= 2 {
                            m.year_digits = Some(w);
                        }
                    }
                }
                if let Some(Part::Marker(prev)) = parts.last_mut() {
                    if let Some(pf) = &mut prev.int_format {
                        pf.parse_width = Some(pf.mandatory_digits);
                    }
                }
                m.int_format = Some(f);
            }
            if component == 'Z' || component == 'z' {
                m.int_format = Some(analyse_integer_picture(&pres1)?);
            }
            parts.push(Part::Marker(Box::new(m)));
            start = pos + 1;
        }
        pos += 1;
    }
    add_literal(&mut parts, &chars[start.min(chars.len())..]);
    Ok(parts)
}

fn apply_names(s: &str, names: Names, width: Option<(Option<usize>, Option<usize>)>) -> String {
    let mut v = match names {
        Names::Upper => s.to_uppercase(),
        Names::Lower => s.to_lowercase(),
        Names::Title => s.to_string(),
    };
    if let Some((_, Some(max))) = width {
        if v.chars().count() > max {
            v = v.chars().take(max).collect();
        }
    }
    v
}

/// `$fromMillis` / `$now` formatting. `picture` defaults to ISO 8601; `tz` is `±hhmm`.
pub(crate) fn format_datetime(
    ms: i64,
    picture: Option<&str>,
    tz: Option<&str>,
) -> Result<String, Error> {
    let (mut oh, mut om) = (0i64, 0i64);
    if let Some(tz) = tz {
        let t = tz.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let d: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
        let offset: i64 = d.parse::<i64>().unwrap_or(0) * if neg { -1 } else { 1 };
        // JSONata: hours = floor(offset / 100), minutes = offset % 100 (sign of offset)
        oh = offset.div_euclid(100);
        om = offset % 100;
    }
    let parts = analyse_picture(
        picture.unwrap_or("[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f001][Z01:01t]"),
    )?;
    let offset_ms = (60 * oh + om) * 60_000;
    let t = tm(ms + offset_ms);
    let mut out = String::new();
    for part in &parts {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Marker(m) => out.push_str(&format_component(&t, m, oh, om)?),
        }
    }
    Ok(out)
}

fn format_component(t: &Tm, m: &Marker, oh: i64, om: i64) -> Result<String, Error> {
    let c = m.component;
    if "YMDdFWwXxHhms".contains(c) {
        let mut v = component(t, c);
        if c == 'Y' {
            if let Some(n) = m.year_digits {
                v %= 10i64.pow(n.min(18) as u32);
            }
        }
        if let Some(names) = m.names {
            let name = match c {
                'M' | 'x' => MONTHS
                    .get((v - 1).clamp(0, 11) as usize)
                    .copied()
                    .unwrap_or(""),
                'F' => DAYS.get(v.clamp(0, 7) as usize).copied().unwrap_or(""),
                _ => {
                    return Err(Error::value(
                        "D3133",
                        None,
                        crate::error::quote(&c.to_string()),
                    ))
                }
            };
            return Ok(apply_names(name, names, m.width));
        }
        let f = m
            .int_format
            .as_ref()
            .ok_or_else(|| Error::value("D3132", None, crate::error::quote(&c.to_string())))?;
        return format_integer_with(v as f64, f);
    }
    match c {
        'f' => {
            let f = m
                .int_format
                .as_ref()
                .ok_or_else(|| Error::value("D3132", None, "\"f\""))?;
            format_integer_with(t.millis as f64, f)
        }
        'Z' | 'z' => {
            let offset = oh * 100 + om;
            let f = m
                .int_format
                .as_ref()
                .ok_or_else(|| Error::value("D3132", None, "\"Z\""))?;
            let mut s = if f.regular.is_some() {
                format_integer_with(offset as f64, f)?
            } else {
                let nd = f.mandatory_digits;
                if nd == 1 || nd == 2 {
                    let mut s = format_integer_with(oh as f64, f)?;
                    if om != 0 {
                        s.push(':');
                        s.push_str(&format!("{:02}", om.abs()));
                    }
                    s
                } else if nd == 3 || nd == 4 {
                    format_integer_with(offset as f64, f)?
                } else {
                    return Err(Error::value("D3134", None, nd.to_string()));
                }
            };
            if offset >= 0 {
                s.insert(0, '+');
            }
            if c == 'z' {
                s.insert_str(0, "GMT");
            }
            if offset == 0 && m.pres2 == Some('t') {
                s = "Z".into();
            }
            Ok(s)
        }
        'P' => {
            let v = if t.hour >= 12 { "pm" } else { "am" };
            Ok(if m.names == Some(Names::Upper) {
                v.to_uppercase()
            } else {
                v.to_string()
            })
        }
        'C' | 'E' => Ok("ISO".to_string()),
        _ => Err(Error::value(
            "D3132",
            None,
            crate::error::quote(&c.to_string()),
        )),
    }
}

/// `$toMillis` without a picture: `Err(())` when the text is not the ISO 8601 shape
/// JSONata accepts (error D3110), `Ok(None)` when it has the shape but is not a valid
/// date (JavaScript's `Date.parse` gives `NaN`), else the instant.
pub(crate) fn parse_iso(s: &str) -> Result<Option<i64>, ()> {
    use std::sync::OnceLock;
    static SHAPE: OnceLock<Option<regress::Regex>> = OnceLock::new();
    let shape = SHAPE.get_or_init(|| {
        regress::Regex::new(
            r"^\d{4}(-[01]\d)?(-[0-3]\d)?(T[0-2]\d:[0-5]\d:[0-5]\d)?(\.\d+)?([+-][0-2]\d:?[0-5]\d|Z)?$",
        )
        .ok()
    });
    match shape {
        Some(re) if re.find(s).is_some() => {}
        _ => return Err(()),
    }
    Ok(date_parse(s))
}

/// JavaScript `Date.parse` for ISO-shaped text (date-only and date-time forms, UTC
/// unless an offset is given).
fn date_parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = s.get(from..from + n)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0, 4)?;
    let mut i = 4;
    let (mut month, mut day) = (1, 1);
    let mut has_month = false;
    if b.get(i) == Some(&b'-') {
        month = digits(i + 1, 2)?;
        has_month = true;
        i += 3;
        if b.get(i) == Some(&b'-') {
            day = digits(i + 1, 2)?;
            i += 3;
        }
    }
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    let mut has_time = false;
    if b.get(i) == Some(&b'T') {
        if !has_month {
            return None;
        }
        has_time = true;
        h = digits(i + 1, 2)?;
        mi = digits(i + 4, 2)?;
        sec = digits(i + 7, 2)?;
        i += 9;
    }
    if b.get(i) == Some(&b'.') {
        if !has_time {
            return None;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let f3: String = s[start..j].chars().chain("000".chars()).take(3).collect();
        ms = f3.parse().ok()?;
        i = j;
    }
    let mut offset_min = 0;
    match b.get(i) {
        None => {}
        Some(b'Z') => {
            if !has_time {
                return None;
            }
        }
        Some(b'+') | Some(b'-') => {
            if !has_time {
                return None;
            }
            let sign = if b[i] == b'-' { -1 } else { 1 };
            let oh = digits(i + 1, 2)?;
            let mut j = i + 3;
            if b.get(j) == Some(&b':') {
                j += 1;
            }
            let om = digits(j, 2)?;
            if oh > 23 {
                return None;
            }
            offset_min = sign * (oh * 60 + om);
        }
        _ => return None,
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h > 24
        || (h == 24 && (mi != 0 || sec != 0 || ms != 0))
    {
        return None;
    }
    Some(date_utc(year, month - 1, day, h, mi, sec, ms) - offset_min * 60_000)
}

/// `$toMillis(timestamp, picture)`: parse with a picture; `Ok(None)` when nothing matched.
pub(crate) fn parse_datetime(s: &str, picture: &str, now_ms: i64) -> Result<Option<i64>, Error> {
    let parts = analyse_picture(picture)?;
    // build one regex with a capture group per part
    let mut re = String::from("^");
    for p in &parts {
        re.push('(');
        match p {
            Part::Literal(l) => {
                for ch in l.chars() {
                    if ".*+?^${}()|[]\\/".contains(ch) {
                        re.push('\\');
                    }
                    re.push(ch);
                }
            }
            Part::Marker(m) => {
                let c = m.component;
                if c == 'Z' || c == 'z' {
                    if c == 'z' {
                        re.push_str("GMT");
                    }
                    re.push_str("[-+][0-9]+");
                    if let Some((_, sep)) = m.int_format.as_ref().and_then(|f| f.regular) {
                        re.push_str(&regress::escape(&sep.to_string()));
                        re.push_str("[0-9]+");
                    }
                } else if c == 'f' {
                    re.push_str("[0-9]+");
                } else if let Some(f) = &m.int_format {
                    re.push_str(&integer_regex(f)?);
                } else {
                    if !"MxFP".contains(c) {
                        return Err(Error::value(
                            "D3133",
                            None,
                            crate::error::quote(&c.to_string()),
                        ));
                    }
                    re.push_str("[a-zA-Z]+");
                }
            }
        }
        re.push(')');
    }
    re.push('$');
    let regex = regress::Regex::with_flags(&re, "i")
        .map_err(|e| Error::value("D3137", None, e.to_string()))?;
    let found = match regex.find(s) {
        Some(f) => f,
        None => return Ok(None),
    };
    let mut comps: std::collections::HashMap<char, i64> = std::collections::HashMap::new();
    for (i, p) in parts.iter().enumerate() {
        let m = match p {
            Part::Marker(m) => m,
            Part::Literal(_) => continue,
        };
        let text = match found.group(i + 1) {
            Some(r) => &s[r],
            None => continue,
        };
        let c = m.component;
        let v: Option<i64> = if c == 'Z' || c == 'z' {
            let t = if c == 'z' {
                text.get(3..).unwrap_or("")
            } else {
                text
            };
            let sep = m.int_format.as_ref().and_then(|f| f.regular).map(|r| r.1);
            let parse_i = |x: &str| -> i64 {
                let (neg, d) = match x.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, x.strip_prefix('+').unwrap_or(x)),
                };
                let n: i64 = d
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0);
                if neg {
                    -n
                } else {
                    n
                }
            };
            let (h, mi) = match sep.and_then(|sc| t.find(sc).map(|i| (i, sc))) {
                Some((i, sc)) => (parse_i(&t[..i]), parse_i(&t[i + sc.len_utf8()..])),
                None => {
                    if t.len() - 1 <= 2 {
                        (parse_i(t), 0)
                    } else {
                        (parse_i(&t[..3]), parse_i(&t[3..]))
                    }
                }
            };
            Some(h * 60 + mi)
        } else if c == 'f' {
            let d: String = text.chars().take(3).collect();
            format!("0.{}", d)
                .parse::<f64>()
                .ok()
                .map(|x| (x * 1000.0).round() as i64)
        } else if let Some(f) = &m.int_format {
            parse_integer_with(text, f)?.map(|x| x as i64)
        } else {
            let lower = text.to_lowercase();
            match c {
                'M' | 'x' => MONTHS
                    .iter()
                    .position(|n| {
                        let n = match m.width {
                            Some((_, Some(max))) => n.chars().take(max).collect::<String>(),
                            _ => n.to_string(),
                        };
                        n.to_lowercase() == lower
                    })
                    .map(|i| i as i64 + 1),
                'F' => DAYS
                    .iter()
                    .skip(1)
                    .position(|n| {
                        let n = match m.width {
                            Some((_, Some(max))) => n.chars().take(max).collect::<String>(),
                            _ => n.to_string(),
                        };
                        n.to_lowercase() == lower
                    })
                    .map(|i| i as i64 + 1),
                _ => match lower.as_str() {
                    "am" => Some(0),
                    "pm" => Some(1),
                    _ => None,
                },
            }
        };
        if let Some(v) = v {
            comps.insert(c, v);
        } else if matches!(
            m.int_format.as_ref().map(|f| &f.primary),
            Some(Primary::Decimal)
        ) {
            comps.insert(c, i64::MIN);
        }
    }
    if comps.is_empty() {
        return Ok(None);
    }
    let mask_of = |keys: &str| -> u32 {
        let mut mask = 0u32;
        for k in keys.chars() {
            mask <<= 1;
            if comps.contains_key(&k) {
                mask += 1;
            }
        }
        mask
    };
    let is_type = |t: u32, mask: u32| (!t & mask) == 0 && (t & mask) != 0;
    let dmask = mask_of("YXMxWwdD");
    let date_a = is_type(161, dmask);
    let date_b = !date_a && is_type(130, dmask);
    let date_c = is_type(84, dmask);
    let date_d = !date_c && is_type(72, dmask);
    let tmask = mask_of("PHhmsf");
    let time_a = is_type(23, tmask);
    let time_b = !time_a && is_type(47, tmask);
    let date_comps = if date_b {
        "YD"
    } else if date_c {
        "XxwF"
    } else if date_d {
        "XWF"
    } else {
        "YMD"
    };
    let time_comps = if time_b { "Phmsf" } else { "Hmsf" };
    let now = tm(now_ms);
    let mut start_specified = false;
    let mut end_specified = false;
    for p in date_comps.chars().chain(time_comps.chars()) {
        if let std::collections::hash_map::Entry::Vacant(e) = comps.entry(p) {
            if start_specified {
                e.insert(if "MDd".contains(p) { 1 } else { 0 });
                end_specified = true;
            } else {
                let v = if p == 'P' {
                    i64::from(now.hour >= 12)
                } else {
                    component(&now, p)
                };
                e.insert(v);
            }
        } else {
            start_specified = true;
            if end_specified {
                return Err(Error::code("D3136", None));
            }
        }
    }
    let get = |k: char| comps.get(&k).copied().unwrap_or(0);
    if comps.values().any(|v| *v == i64::MIN) {
        return Ok(None);
    }
    // Date.UTC maps years 0..=99 to 1900..=1999
    let year = match get('Y') {
        y @ 0..=99 => y + 1900,
        y => y,
    };
    let mut month0 = if get('M') > 0 { get('M') - 1 } else { 0 };
    let mut day = get('D');
    if date_b {
        let first = date_utc(year, 0, 1, 0, 0, 0, 0);
        let derived = tm(first + (get('d') - 1) * DAY_MS);
        month0 = derived.month - 1;
        day = derived.day;
    }
    if date_c || date_d {
        return Err(Error::code("D3136", None));
    }
    let mut hour = get('H');
    if time_b {
        hour = if get('h') == 12 { 0 } else { get('h') };
        if get('P') == 1 {
            hour += 12;
        }
    }
    let mut millis = date_utc(year, month0, day, hour, get('m'), get('s'), get('f'));
    let tzm = comps
        .get(&'Z')
        .or_else(|| comps.get(&'z'))
        .copied()
        .unwrap_or(0);
    millis -= tzm * 60_000;
    Ok(Some(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for d in [-800_000i64, -1, 0, 1, 17_000, 19_716, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn iso_default_format() {
        assert_eq!(
            format_datetime(1_510_067_557_121, None, None).unwrap(),
            "2017-11-07T15:12:37.121Z"
        );
        assert_eq!(
            format_datetime(-1000, None, None).unwrap(),
            "1969-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn pictures() {
        let ms = 1_510_067_557_121;
        assert_eq!(
            format_datetime(ms, Some("[D1o] [MNn] [Y]"), None).unwrap(),
            "7th November 2017"
        );
        assert_eq!(
            format_datetime(ms, Some("[h]:[m01][P]"), None).unwrap(),
            "3:12pm"
        );
        assert_eq!(
            format_datetime(ms, Some("[H01]:[m01] [z]"), Some("-0500")).unwrap(),
            "10:12 GMT-05:00"
        );
        assert_eq!(
            format_datetime(ms, Some("[X"), None).unwrap_err().code,
            "D3135"
        );
    }

    #[test]
    fn iso_parsing() {
        assert_eq!(
            parse_iso("2017-11-07T15:12:37.121Z"),
            Ok(Some(1_510_067_557_121))
        );
        assert_eq!(parse_iso("1970-01-01"), Ok(Some(0)));
        assert_eq!(parse_iso("1970-01-01T01:00:00+01:00"), Ok(Some(0)));
        assert_eq!(parse_iso("2017-13-01"), Ok(None));
        assert_eq!(parse_iso("2017-02-30"), Ok(Some(1_488_412_800_000)));
        assert_eq!(parse_iso("nope"), Err(()));
    }

    #[test]
    fn picture_parsing() {
        assert_eq!(
            parse_datetime("2018-02-01", "[Y0001]-[M01]-[D01]", 0).unwrap(),
            Some(1_517_443_200_000)
        );
        assert_eq!(
            parse_datetime("12 March 2020", "[D1] [MNn] [Y0001]", 0).unwrap(),
            Some(1_583_971_200_000)
        );
    }
}

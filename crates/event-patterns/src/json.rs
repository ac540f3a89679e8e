//! A small JSON reader for pattern text.
//!
//! Patterns are read with this reader rather than `serde_json` for three reasons:
//! duplicate keys must survive (EventBridge lets the last occurrence of a path win),
//! numbers must keep their exact source text (numeric matching works on the decimal
//! text), and syntax errors are reported with the wording EventBridge uses.

/// A JSON value as written in a pattern, keys in source order, duplicates kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PVal {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Num(String),
    Str(String),
    Arr(Vec<PVal>),
    Obj(Vec<(String, PVal)>),
}

impl PVal {
    /// The text a streaming JSON parser reports for the token that starts this value.
    pub(crate) fn token_text(&self) -> String {
        match self {
            PVal::Null => "null".into(),
            PVal::Bool(b) => b.to_string(),
            PVal::Num(n) => n.clone(),
            PVal::Str(s) => s.clone(),
            PVal::Arr(_) => "[".into(),
            PVal::Obj(_) => "{".into(),
        }
    }
}

/// Parses the first JSON value of `text` (anything after it is ignored, as EventBridge does).
///
/// Returns the reason text of the syntax error on failure.
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Option<PVal>, String> {
    let mut p = Reader {
        b: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
        max_depth,
    };
    p.ws();
    if p.i >= p.b.len() {
        return Ok(None);
    }
    p.value().map(Some)
}

struct Reader<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
    max_depth: usize,
}

const EXPECTING: &str = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')";

impl Reader<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.text.get(self.i..).and_then(|s| s.chars().next())
    }

    fn unexpected(&self, what: &str) -> String {
        match self.peek_char() {
            Some(c) => format!("Unexpected character ({}): {what}", describe(c)),
            None => "Unexpected end-of-input".to_string(),
        }
    }

    fn value(&mut self) -> Result<PVal, String> {
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return Err("Unexpected end-of-input: expected a value".into());
        };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                self.i += 1;
                self.string().map(PVal::Str)
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.literal(),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(format!(
                "Document nesting depth exceeds the maximum allowed ({})",
                self.max_depth
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<PVal, String> {
        self.enter()?;
        self.i += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(PVal::Obj(fields));
        }
        loop {
            self.ws();
            match self.b.get(self.i) {
                Some(b'"') => self.i += 1,
                Some(_) => {
                    return Err(self.unexpected("was expecting double-quote to start field name"))
                }
                None => {
                    return Err("Unexpected end-of-input: expected close marker for Object".into())
                }
            }
            let key = self.string()?;
            self.ws();
            match self.b.get(self.i) {
                Some(b':') => self.i += 1,
                Some(_) => {
                    return Err(
                        self.unexpected("was expecting a colon to separate field name and value")
                    )
                }
                None => {
                    return Err("Unexpected end-of-input: expected close marker for Object".into())
                }
            }
            let v = self.value()?;
            fields.push((key, v));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(PVal::Obj(fields));
                }
                Some(_) => {
                    return Err(self.unexpected("was expecting comma to separate Object entries"))
                }
                None => {
                    return Err("Unexpected end-of-input: expected close marker for Object".into())
                }
            }
        }
    }

    fn array(&mut self) -> Result<PVal, String> {
        self.enter()?;
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(PVal::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(PVal::Arr(items));
                }
                Some(_) => {
                    return Err(self.unexpected("was expecting comma to separate Array entries"))
                }
                None => {
                    return Err("Unexpected end-of-input: expected close marker for Array".into())
                }
            }
        }
    }

    /// Reads a string body; `self.i` is just after the opening quote.
    fn string(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut start = self.i;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(
                    "Unexpected end-of-input: was expecting closing quote for a string value"
                        .into(),
                );
            };
            match c {
                b'"' => {
                    out.push_str(&self.text[start..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.text[start..self.i]);
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err("Unexpected end-of-input in character escape sequence".into());
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(self.i) == Some(&b'\\')
                                && self.b.get(self.i + 1) == Some(&b'u')
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                } else {
                                    out.push('\u{FFFD}');
                                    self.i = save;
                                }
                            } else {
                                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                            }
                        }
                        _ => {
                            let ch = self.text[self.i - 1..].chars().next().unwrap_or('?');
                            return Err(format!("Unrecognized character escape {}", describe(ch)));
                        }
                    }
                    start = self.i;
                }
                0..=0x1f => {
                    return Err(format!(
                        "Illegal unquoted character ((CTRL-CHAR, code {c})): has to be escaped using backslash to be included in string value"
                    ));
                }
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(&c) = self.b.get(self.i) else {
                return Err("Unexpected end-of-input in character escape sequence".into());
            };
            let d = (c as char).to_digit(16).ok_or_else(|| {
                format!(
                    "Unexpected character ({}): expected a hex-digit for character escape sequence",
                    describe(c as char)
                )
            })?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<PVal, String> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
            match self.b.get(self.i) {
                Some(b'0'..=b'9') => {}
                Some(_) => {
                    let c = self.peek_char().unwrap_or('?');
                    return Err(format!("Unexpected character ({}) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value", describe(c)));
                }
                None => return Err("Unexpected end-of-input in a Number value".into()),
            }
        }
        if self.b[self.i] == b'0' && matches!(self.b.get(self.i + 1), Some(b'0'..=b'9')) {
            return Err("Invalid numeric value: Leading zeroes not allowed".into());
        }
        while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                return Err(match self.peek_char() {
                    Some(c) => format!("Unexpected character ({}) in numeric value: Decimal point not followed by a digit", describe(c)),
                    None => "Unexpected end-of-input: Decimal point not followed by a digit".into(),
                });
            }
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                return Err(match self.peek_char() {
                    Some(c) => format!("Unexpected character ({}) in numeric value: Exponent indicator not followed by a digit", describe(c)),
                    None => "Unexpected end-of-input: Exponent indicator not followed by a digit".into(),
                });
            }
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        Ok(PVal::Num(self.text[start..self.i].to_string()))
    }

    fn literal(&mut self) -> Result<PVal, String> {
        let start = self.i;
        let first = self.peek_char().unwrap_or(' ');
        if !(first.is_alphanumeric() || first == '_' || first == '$') {
            return Err(format!(
                "Unexpected character ({}): expected a valid value {EXPECTING}",
                describe(first)
            ));
        }
        let rest = &self.text[start..];
        let end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
            .map_or(rest.len(), |(i, _)| i);
        let tok = &rest[..end];
        self.i = start + end;
        match tok {
            "null" => Ok(PVal::Null),
            "true" => Ok(PVal::Bool(true)),
            "false" => Ok(PVal::Bool(false)),
            _ => Err(format!(
                "Unrecognized token '{tok}': was expecting {EXPECTING}"
            )),
        }
    }
}

/// How Jackson names a character in its messages: `'x' (code 120)`.
fn describe(c: char) -> String {
    let code = c as u32;
    if c.is_control() {
        format!("(CTRL-CHAR, code {code})")
    } else {
        format!("'{c}' (code {code})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_and_number_text() {
        let v = parse(r#"{"a": [1.50], "a": [2e3]}"#, 10).unwrap().unwrap();
        assert_eq!(
            v,
            PVal::Obj(vec![
                ("a".into(), PVal::Arr(vec![PVal::Num("1.50".into())])),
                ("a".into(), PVal::Arr(vec![PVal::Num("2e3".into())])),
            ])
        );
    }

    #[test]
    fn jackson_style_messages() {
        assert_eq!(
            parse("this is not json", 10).unwrap_err(),
            "Unrecognized token 'this': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
        );
        assert_eq!(
            parse("{'bad': 'quotation'}", 10).unwrap_err(),
            "Unexpected character (''' (code 39)): was expecting double-quote to start field name"
        );
        assert_eq!(
            parse("{\"not\": closed mark\"", 10).unwrap_err(),
            "Unrecognized token 'closed': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep, 64).unwrap_err().contains("nesting depth"));
    }

    #[test]
    fn unicode_escapes() {
        let v = parse(r#""\ud83d\ude80 \u00e9""#, 4).unwrap().unwrap();
        assert_eq!(v, PVal::Str("\u{1F680} \u{e9}".into()));
    }
}

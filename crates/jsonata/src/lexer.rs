//! Tokenizer for JSONata expressions.

use crate::error::Error;

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Name(String),
    Variable(String),
    Number(f64),
    Str(String),
    Bool(bool),
    Null,
    Regex(String, String),
    Op(&'static str),
    End,
}

/// A token with the character offset just after it (JSONata reports that position).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const OPERATORS: &[&str] = &[
    "..", ":=", "!=", ">=", "<=", "**", "~>", "?:", "??", ".", "[", "]", "{", "}", "(", ")", ",",
    "@", "#", ";", ":", "?", "+", "-", "*", "/", "%", "|", "=", "<", ">", "^", "&", "!", "~",
];

fn single_op(c: char) -> Option<&'static str> {
    OPERATORS
        .iter()
        .find(|o| o.len() == 1 && o.starts_with(c))
        .copied()
}

fn is_ws(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{2028}'
            | '\u{2029}'
    ) || c.is_whitespace()
}

/// Splits an expression into tokens on demand.
pub(crate) struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    pub fn new(src: &str) -> Lexer {
        Lexer {
            chars: src.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    /// Next token. `prefix` says whether an operand is expected (then `/` starts a regex).
    pub fn next(&mut self, prefix: bool) -> Result<Token, Error> {
        // skip whitespace and comments
        loop {
            while matches!(self.peek(0), Some(c) if is_ws(c)) {
                self.pos += 1;
            }
            if self.peek(0) == Some('/') && self.peek(1) == Some('*') {
                let start = self.pos;
                self.pos += 2;
                loop {
                    match self.peek(0) {
                        None => return Err(Error::code("S0106", Some(start))),
                        Some('*') if self.peek(1) == Some('/') => {
                            self.pos += 2;
                            break;
                        }
                        _ => self.pos += 1,
                    }
                }
                continue;
            }
            break;
        }
        let c = match self.peek(0) {
            None => {
                return Ok(Token {
                    tok: Tok::End,
                    pos: self.pos,
                })
            }
            Some(c) => c,
        };
        if prefix && c == '/' {
            self.pos += 1;
            return self.scan_regex();
        }
        // two-character operators
        if let Some(n) = self.peek(1) {
            let two: String = [c, n].iter().collect();
            if let Some(op) = OPERATORS.iter().find(|o| o.len() == 2 && **o == two) {
                // `..` must not swallow a number like `.5`? JSONata has no leading-dot numbers.
                self.pos += 2;
                return Ok(Token {
                    tok: Tok::Op(op),
                    pos: self.pos,
                });
            }
        }
        if let Some(op) = single_op(c) {
            self.pos += 1;
            return Ok(Token {
                tok: Tok::Op(op),
                pos: self.pos,
            });
        }
        if c == '"' || c == '\'' {
            self.pos += 1;
            return self.scan_string(c);
        }
        if c.is_ascii_digit() {
            return self.scan_number();
        }
        if c == '`' {
            self.pos += 1;
            let start = self.pos;
            while let Some(ch) = self.peek(0) {
                if ch == '`' {
                    let name: String = self.chars[start..self.pos].iter().collect();
                    self.pos += 1;
                    return Ok(Token {
                        tok: Tok::Name(name),
                        pos: self.pos,
                    });
                }
                self.pos += 1;
            }
            return Err(Error::code("S0105", Some(self.pos)));
        }
        // names and variables
        let start = self.pos;
        while let Some(ch) = self.peek(0) {
            if is_ws(ch) || single_op(ch).is_some() || ch == '"' || ch == '\'' {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            // a quote or other char that cannot start a token here
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        let tok = if let Some(v) = word.strip_prefix('$') {
            Tok::Variable(v.to_string())
        } else {
            match word.as_str() {
                "and" => Tok::Op("and"),
                "or" => Tok::Op("or"),
                "in" => Tok::Op("in"),
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                "null" => Tok::Null,
                _ => Tok::Name(word),
            }
        };
        Ok(Token { tok, pos: self.pos })
    }

    fn scan_string(&mut self, quote: char) -> Result<Token, Error> {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            self.pos += 1;
            if c == '\\' {
                let e = match self.peek(0) {
                    Some(e) => e,
                    None => break,
                };
                self.pos += 1;
                match e {
                    '"' => s.push('"'),
                    '\\' => s.push('\\'),
                    '/' => s.push('/'),
                    'b' => s.push('\u{8}'),
                    'f' => s.push('\u{c}'),
                    'n' => s.push('\n'),
                    'r' => s.push('\r'),
                    't' => s.push('\t'),
                    'u' => {
                        let hex: String = self.chars
                            [self.pos..(self.pos + 4).min(self.chars.len())]
                            .iter()
                            .collect();
                        if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            return Err(Error::code("S0104", Some(self.pos)));
                        }
                        self.pos += 4;
                        let unit = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                        // combine surrogate pairs
                        if (0xd800..0xdc00).contains(&unit)
                            && self.peek(0) == Some('\\')
                            && self.peek(1) == Some('u')
                        {
                            let hex2: String = self.chars[(self.pos + 2).min(self.chars.len())
                                ..(self.pos + 6).min(self.chars.len())]
                                .iter()
                                .collect();
                            if let Ok(lo) = u32::from_str_radix(&hex2, 16) {
                                if (0xdc00..0xe000).contains(&lo) {
                                    self.pos += 6;
                                    let cp = 0x10000 + ((unit - 0xd800) << 10) + (lo - 0xdc00);
                                    s.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                                    continue;
                                }
                            }
                        }
                        s.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                    }
                    other => return Err(Error::token("S0103", Some(self.pos), &other.to_string())),
                }
            } else if c == quote {
                return Ok(Token {
                    tok: Tok::Str(s),
                    pos: self.pos,
                });
            } else {
                s.push(c);
            }
        }
        Err(Error::code("S0101", Some(self.pos)))
    }

    fn scan_number(&mut self) -> Result<Token, Error> {
        let start = self.pos;
        let digits = |lx: &mut Lexer| {
            let s = lx.pos;
            while matches!(lx.peek(0), Some(c) if c.is_ascii_digit()) {
                lx.pos += 1;
            }
            lx.pos > s
        };
        if self.peek(0) == Some('0') {
            self.pos += 1;
        } else {
            digits(self);
        }
        if self.peek(0) == Some('.') && matches!(self.peek(1), Some(c) if c.is_ascii_digit()) {
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek(0), Some('e') | Some('E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(0), Some('+') | Some('-')) {
                self.pos += 1;
            }
            if !digits(self) {
                self.pos = save;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let n: f64 = text.parse().unwrap_or(f64::NAN);
        if !n.is_finite() {
            return Err(Error::token("S0102", Some(self.pos), &text));
        }
        Ok(Token {
            tok: Tok::Number(n),
            pos: self.pos,
        })
    }

    fn scan_regex(&mut self) -> Result<Token, Error> {
        let start = self.pos;
        let mut depth = 0i32;
        while let Some(c) = self.peek(0) {
            let escaped = {
                let mut n = 0;
                let mut i = self.pos;
                while i > start && self.chars[i - 1] == '\\' {
                    n += 1;
                    i -= 1;
                }
                n % 2 == 1
            };
            if c == '/' && depth == 0 && !escaped {
                let pattern: String = self.chars[start..self.pos].iter().collect();
                if pattern.is_empty() {
                    return Err(Error::code("S0301", Some(self.pos)));
                }
                self.pos += 1;
                let fstart = self.pos;
                while matches!(self.peek(0), Some('i') | Some('m')) {
                    self.pos += 1;
                }
                let flags: String = self.chars[fstart..self.pos].iter().collect();
                return Ok(Token {
                    tok: Tok::Regex(pattern, flags),
                    pos: self.pos,
                });
            }
            if !escaped {
                match c {
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => depth -= 1,
                    _ => {}
                }
            }
            self.pos += 1;
        }
        Err(Error::code("S0302", Some(self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str) -> Vec<Tok> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next(false).expect("token");
            if t.tok == Tok::End {
                break;
            }
            out.push(t.tok);
        }
        out
    }

    #[test]
    fn tokens() {
        assert_eq!(
            all("a.b[0] ~> $f($x, 'q\\n') /* c */ and `x y`"),
            vec![
                Tok::Name("a".into()),
                Tok::Op("."),
                Tok::Name("b".into()),
                Tok::Op("["),
                Tok::Number(0.0),
                Tok::Op("]"),
                Tok::Op("~>"),
                Tok::Variable("f".into()),
                Tok::Op("("),
                Tok::Variable("x".into()),
                Tok::Op(","),
                Tok::Str("q\n".into()),
                Tok::Op(")"),
                Tok::Op("and"),
                Tok::Name("x y".into()),
            ]
        );
    }

    #[test]
    fn numbers_and_errors() {
        assert_eq!(all("1.5e3"), vec![Tok::Number(1500.0)]);
        assert_eq!(Lexer::new("'abc").next(false).unwrap_err().code, "S0101");
        assert_eq!(Lexer::new("1e999").next(false).unwrap_err().code, "S0102");
        assert_eq!(Lexer::new("'\\q'").next(false).unwrap_err().code, "S0103");
        assert_eq!(Lexer::new("/* x").next(false).unwrap_err().code, "S0106");
    }

    #[test]
    fn regex() {
        let t = Lexer::new("/a[/]b/i").next(true).unwrap();
        assert_eq!(t.tok, Tok::Regex("a[/]b".into(), "i".into()));
        assert_eq!(Lexer::new("//").next(true).unwrap_err().code, "S0301");
        assert_eq!(Lexer::new("/abc").next(true).unwrap_err().code, "S0302");
    }
}

//! Function signatures (`<s-n?:s>`) and argument validation.

use crate::error::{Error, Inserts};
use crate::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quant {
    One,
    Optional,
    Plus,
}

#[derive(Debug, Clone)]
struct Param {
    /// The type symbol (`s`, `n`, `a`, `(sn)`, ...).
    kind: String,
    /// Argument symbols this parameter accepts.
    accepts: String,
    quant: Quant,
    context: bool,
    subtype: Option<String>,
}

/// A parsed function signature.
#[derive(Debug, Clone)]
pub struct Signature {
    params: Vec<Param>,
}

/// The signature symbol of a value (`m` for undefined).
pub(crate) fn symbol(v: &Value) -> char {
    match v {
        Value::Undefined => 'm',
        Value::Null => 'l',
        Value::Bool(_) => 'b',
        Value::Number(_) => 'n',
        Value::String(_) => 's',
        Value::Array(..) => 'a',
        Value::Object(_) | Value::TailCall(_) => 'o',
        _ => 'f',
    }
}

fn array_type_name(sub: &str) -> &'static str {
    match sub {
        "a" => "arrays",
        "b" => "booleans",
        "f" => "functions",
        "n" => "numbers",
        "o" => "objects",
        "s" => "strings",
        _ => "values",
    }
}

impl Signature {
    /// Parse a signature such as `<s-nn?:s>`.
    pub fn parse(sig: &str) -> Result<Signature, Error> {
        let chars: Vec<char> = sig.chars().collect();
        let mut params: Vec<Param> = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            let c = chars[i];
            if c == ':' || c == '>' {
                break;
            }
            let simple = |k: char, acc: &str| Param {
                kind: k.to_string(),
                accepts: acc.to_string(),
                quant: Quant::One,
                context: false,
                subtype: None,
            };
            match c {
                's' | 'n' | 'b' | 'l' | 'o' | 'f' => params.push(simple(c, &format!("{}m", c))),
                'a' => params.push(simple('a', "asnblfom")),
                'x' => params.push(simple('x', "asnblfom")),
                'j' => params.push(simple('j', "asnblom")),
                '-' => {
                    if let Some(p) = params.last_mut() {
                        p.context = true;
                        p.quant = Quant::Optional;
                    }
                }
                '?' => {
                    if let Some(p) = params.last_mut() {
                        p.quant = Quant::Optional;
                    }
                }
                '+' => {
                    if let Some(p) = params.last_mut() {
                        p.quant = Quant::Plus;
                    }
                }
                '(' => {
                    let end = chars[i..].iter().position(|c| *c == ')').map(|p| p + i);
                    let end = end.ok_or_else(|| Error::value("S0401", Some(i), sig))?;
                    let choice: String = chars[i + 1..end].iter().collect();
                    if choice.contains('<') {
                        return Err(Error::value("S0402", Some(i), choice));
                    }
                    params.push(Param {
                        kind: format!("({})", choice),
                        accepts: format!("{}m", choice),
                        quant: Quant::One,
                        context: false,
                        subtype: None,
                    });
                    i = end;
                }
                '<' => {
                    let mut depth = 1;
                    let mut j = i + 1;
                    while j < chars.len() && depth > 0 {
                        match chars[j] {
                            '<' => depth += 1,
                            '>' => depth -= 1,
                            _ => {}
                        }
                        j += 1;
                    }
                    let inner: String = chars[i + 1..j.saturating_sub(1).max(i + 1)]
                        .iter()
                        .collect();
                    match params.last_mut() {
                        Some(p) if p.kind == "a" || p.kind == "f" => {
                            p.subtype = Some(inner);
                        }
                        _ => return Err(Error::value("S0401", Some(i), inner)),
                    }
                    i = j - 1;
                }
                _ => {}
            }
            i += 1;
        }
        Ok(Signature { params })
    }

    /// Number of declared parameters.
    pub fn arity(&self) -> usize {
        self.params.len()
    }

    /// Greedy backtracking match of parameter `pi..` against symbols `si..`; returns the
    /// number of symbols each parameter consumed. With `prefix`, trailing symbols may
    /// remain unmatched.
    fn matches(
        &self,
        pi: usize,
        sig: &[char],
        si: usize,
        prefix: bool,
        out: &mut Vec<usize>,
    ) -> bool {
        if pi == self.params.len() {
            return prefix || si == sig.len();
        }
        let p = &self.params[pi];
        let ok = |k: usize| {
            si + k <= sig.len() && sig[si..si + k].iter().all(|c| p.accepts.contains(*c))
        };
        let candidates: Vec<usize> = match p.quant {
            Quant::One => vec![1],
            Quant::Optional => vec![1, 0],
            Quant::Plus => {
                let mut n = 0;
                while si + n < sig.len() && p.accepts.contains(sig[si + n]) {
                    n += 1;
                }
                (1..=n).rev().collect()
            }
        };
        for k in candidates {
            if ok(k) {
                out.push(k);
                if self.matches(pi + 1, sig, si + k, prefix, out) {
                    return true;
                }
                out.pop();
            }
        }
        false
    }

    /// Validate `args` (substituting the context value where the signature allows)
    /// and return the arguments the function receives.
    pub(crate) fn validate(
        &self,
        args: &[Value],
        context: &Value,
        fname: &str,
    ) -> Result<Vec<Value>, Error> {
        let sig: Vec<char> = args.iter().map(symbol).collect();
        let mut counts = Vec::new();
        if !self.matches(0, &sig, 0, false, &mut counts) {
            // find how far the arguments matched
            let mut good_to = 0;
            for k in 1..=self.params.len() {
                let partial = Signature {
                    params: self.params[..k].to_vec(),
                };
                let mut c = Vec::new();
                if partial.matches(0, &sig, 0, true, &mut c) {
                    good_to = c.iter().sum();
                } else {
                    break;
                }
            }
            return Err(Error::with(
                "T0410",
                None,
                Inserts {
                    token: Some(fname),
                    index: Some(good_to + 1),
                    ..Default::default()
                },
            ));
        }
        let mut out = Vec::new();
        let mut ai = 0;
        for (p, &count) in self.params.iter().zip(counts.iter()) {
            if count == 0 {
                if p.context {
                    let cs = symbol(context);
                    if p.accepts.contains(cs) {
                        out.push(context.clone());
                    } else {
                        return Err(Error::with(
                            "T0411",
                            None,
                            Inserts {
                                token: Some(fname),
                                index: Some(ai + 1),
                                ..Default::default()
                            },
                        ));
                    }
                } else {
                    out.push(args.get(ai).cloned().unwrap_or_default());
                    ai += 1;
                }
                continue;
            }
            for _ in 0..count {
                let arg = args.get(ai).cloned().unwrap_or_default();
                if p.kind == "a" {
                    let single = symbol(&arg);
                    if single == 'm' {
                        out.push(Value::Undefined);
                    } else {
                        if let Some(sub) = &p.subtype {
                            let ok = if single != 'a' {
                                sub.len() == 1 && sub.starts_with(single)
                            } else {
                                let items = arg.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
                                match items.first() {
                                    None => true,
                                    Some(first) => {
                                        let t = symbol(first);
                                        sub.starts_with(t) && items.iter().all(|x| symbol(x) == t)
                                    }
                                }
                            };
                            if !ok {
                                return Err(Error::with(
                                    "T0412",
                                    None,
                                    Inserts {
                                        token: Some(fname),
                                        index: Some(ai + 1),
                                        type_: Some(array_type_name(sub)),
                                        ..Default::default()
                                    },
                                ));
                            }
                        }
                        if single != 'a' {
                            out.push(Value::array(vec![arg]));
                        } else {
                            out.push(arg);
                        }
                    }
                } else {
                    out.push(arg);
                }
                ai += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_substitution() {
        let s = Signature::parse("<s-nn?:s>").unwrap();
        let out = s
            .validate(&[Value::Number(1.0)], &Value::str("abc"), "substring")
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_str(), Some("abc"));
    }

    #[test]
    fn mismatch_reports_index() {
        let s = Signature::parse("<s-nn?:s>").unwrap();
        let e = s
            .validate(
                &[Value::str("a"), Value::str("b")],
                &Value::Undefined,
                "substring",
            )
            .unwrap_err();
        assert_eq!(e.code, "T0410");
        assert_eq!(
            e.message,
            "Argument 2 of function \"substring\" does not match function signature"
        );
    }

    #[test]
    fn array_wrapping_and_subtypes() {
        let s = Signature::parse("<a<n>:n>").unwrap();
        let out = s
            .validate(&[Value::Number(2.0)], &Value::Undefined, "sum")
            .unwrap();
        assert!(matches!(out[0], Value::Array(..)));
        let e = s
            .validate(
                &[Value::array(vec![Value::str("x")])],
                &Value::Undefined,
                "sum",
            )
            .unwrap_err();
        assert_eq!(e.code, "T0412");
    }

    #[test]
    fn plus_and_choice() {
        let s = Signature::parse("<a+>").unwrap();
        assert_eq!(
            s.validate(&[Value::Null, Value::Null], &Value::Undefined, "zip")
                .unwrap()
                .len(),
            2
        );
        let s = Signature::parse("<s-(sf):b>").unwrap();
        assert!(s
            .validate(
                &[Value::str("a"), Value::Number(1.0)],
                &Value::Undefined,
                "contains"
            )
            .is_err());
    }
}

//! Parsing and validating one event pattern into its match branches.

use crate::error::PatternError;
use crate::json::{self, PVal};
use crate::values::{self, fixed6, IpBytes, IpRange, WildPart};

/// Limits applied when parsing patterns. The defaults are EventBridge's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum pattern length in characters (EventBridge: 4096).
    pub max_pattern_len: usize,
    /// Maximum nesting of objects/arrays in a pattern.
    pub max_depth: usize,
    /// Maximum number of match branches a pattern may expand to through `$or`.
    pub max_branches: usize,
    /// Maximum number of `*` in one wildcard value before EventBridge's
    /// "Rule is too complex" refusal.
    pub max_wildcards: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pattern_len: 4096,
            max_depth: 100,
            max_branches: 1024,
            max_wildcards: 5,
        }
    }
}

const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";
const RANGE_ERR: &str = "Value must be between -5.0E9 and 5.0E9, inclusive";
const RESERVED_IN_OR: [&str; 9] = [
    "anything-but",
    "numeric",
    "prefix",
    "suffix",
    "exists",
    "cidr",
    "equals-ignore-case",
    "wildcard",
    "exact",
];

/// A parsed, validated event pattern.
///
/// A pattern is a disjunction of *branches* (more than one only through `$or`); a branch
/// is a conjunction of field conditions; a field condition is a disjunction of matchers
/// on the field at a dot-joined path.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub(crate) branches: Vec<Branch>,
}

/// One match branch: every condition must hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub(crate) conds: Vec<Condition>,
}

/// The matchers on one field (any of them may match).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// Dot-joined path, e.g. `detail.state`.
    pub(crate) path: String,
    pub(crate) matchers: Vec<Matcher>,
}

impl Condition {
    /// True when `{"exists": false}` is one of the alternatives.
    pub(crate) fn absent_ok(&self) -> bool {
        self.matchers
            .iter()
            .any(|m| matches!(m, Matcher::Exists(false)))
    }
}

/// One matcher on one leaf value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    /// Exact string; `ip` is set when the string is an IP address literal, which then
    /// also matches other spellings of the same address.
    ExactStr {
        s: String,
        ip: Option<IpBytes>,
    },
    /// Exact number: equal as a fixed-point number, or equal as text.
    ExactNum {
        text: String,
        q: Option<i64>,
    },
    Null,
    Bool(bool),
    Prefix(String),
    Suffix(String),
    /// Folded prefix.
    PrefixIc(String),
    /// Folded suffix.
    SuffixIc(String),
    /// Folded whole value.
    EqualsIc(String),
    Wildcard(Vec<WildPart>),
    Numeric {
        lo: Option<(i64, bool)>,
        hi: Option<(i64, bool)>,
    },
    Cidr(IpRange),
    Exists(bool),
    AnythingBut(AnythingBut),
}

/// The `anything-but` forms: a leaf matches unless it is one of the excluded values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<i64>),
    /// Folded strings.
    IgnoreCase(Vec<String>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    Wildcards(Vec<Vec<WildPart>>),
}

/// A leaf value of an event, as the matchers see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Leaf<'a> {
    Str(&'a str),
    /// A number, as written in the event.
    Num(&'a str),
    Bool(bool),
    Null,
}

impl Matcher {
    /// Does this matcher accept the leaf? (`Exists(false)` never does: absence is
    /// decided per field, not per leaf.)
    pub(crate) fn matches(&self, leaf: &Leaf<'_>) -> bool {
        match (self, leaf) {
            (Matcher::ExactStr { s, ip }, Leaf::Str(v)) => {
                s == v || ip.is_some_and(|ip| values::parse_ip(v) == Some(ip))
            }
            (Matcher::ExactNum { text, q }, Leaf::Num(v)) => {
                text == v || (q.is_some() && fixed6(v.as_bytes()) == *q)
            }
            (Matcher::Null, Leaf::Null) => true,
            (Matcher::Bool(b), Leaf::Bool(v)) => b == v,
            (Matcher::Prefix(p), Leaf::Str(v)) => v.starts_with(p.as_str()),
            (Matcher::Suffix(p), Leaf::Str(v)) => v.ends_with(p.as_str()),
            (Matcher::PrefixIc(p), Leaf::Str(v)) => values::fold(v).starts_with(p.as_str()),
            (Matcher::SuffixIc(p), Leaf::Str(v)) => values::fold(v).ends_with(p.as_str()),
            (Matcher::EqualsIc(p), Leaf::Str(v)) => values::fold(v) == *p,
            (Matcher::Wildcard(w), Leaf::Str(v)) => values::wildcard_match(w, v.as_bytes()),
            (Matcher::Numeric { lo, hi }, Leaf::Num(v)) => match fixed6(v.as_bytes()) {
                Some(x) => in_range(x, *lo, *hi),
                None => false,
            },
            (Matcher::Cidr(r), Leaf::Str(v)) => {
                values::parse_ip(v).is_some_and(|ip| r.contains(&ip))
            }
            (Matcher::Exists(true), _) => true,
            (Matcher::AnythingBut(ab), leaf) => !ab.excludes(leaf),
            _ => false,
        }
    }
}

/// Is `x` within the optional bounds (`(value, open)`)?
#[inline]
pub(crate) fn in_range(x: i64, lo: Option<(i64, bool)>, hi: Option<(i64, bool)>) -> bool {
    if let Some((l, open)) = lo {
        if x < l || (open && x == l) {
            return false;
        }
    }
    if let Some((h, open)) = hi {
        if x > h || (open && x == h) {
            return false;
        }
    }
    true
}

impl AnythingBut {
    /// Is the leaf one of the excluded values?
    pub(crate) fn excludes(&self, leaf: &Leaf<'_>) -> bool {
        match (self, leaf) {
            (AnythingBut::Strings(set), Leaf::Str(v)) => set.iter().any(|s| s == v),
            (AnythingBut::Numbers(set), Leaf::Num(v)) => {
                fixed6(v.as_bytes()).is_some_and(|q| set.contains(&q))
            }
            (AnythingBut::IgnoreCase(set), Leaf::Str(v)) => {
                let f = values::fold(v);
                set.contains(&f)
            }
            (AnythingBut::Prefixes(set), Leaf::Str(v)) => {
                set.iter().any(|p| v.starts_with(p.as_str()))
            }
            (AnythingBut::Suffixes(set), Leaf::Str(v)) => {
                set.iter().any(|p| v.ends_with(p.as_str()))
            }
            (AnythingBut::Wildcards(set), Leaf::Str(v)) => {
                set.iter().any(|w| values::wildcard_match(w, v.as_bytes()))
            }
            _ => false,
        }
    }
}

impl Pattern {
    /// Parses and validates pattern text with EventBridge's limits.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        Pattern::parse_with(text, &Limits::default())
    }

    /// Parses and validates pattern text with the given limits.
    pub fn parse_with(text: &str, limits: &Limits) -> Result<Pattern, PatternError> {
        let len = text.chars().count();
        if len > limits.max_pattern_len {
            return Err(PatternError::TooLarge {
                len,
                max: limits.max_pattern_len,
            });
        }
        let root = json::parse(text, limits.max_depth).map_err(PatternError::invalid)?;
        let Some(root) = root else {
            return Err(PatternError::invalid("Filter is not an object"));
        };
        let PVal::Obj(fields) = &root else {
            return Err(PatternError::invalid("Filter is not an object"));
        };
        let mut c = Compiler {
            limits,
            rules: Vec::new(),
        };
        let mut path = Vec::new();
        c.object(&mut path, fields, false)
            .map_err(PatternError::invalid)?;
        let branches: Vec<Branch> = c.rules.into_iter().map(|conds| Branch { conds }).collect();
        for b in &branches {
            for cond in &b.conds {
                for m in &cond.matchers {
                    let stars = match m {
                        Matcher::Wildcard(w) => star_count(w),
                        Matcher::AnythingBut(AnythingBut::Wildcards(ws)) => {
                            ws.iter().map(|w| star_count(w)).max().unwrap_or(0)
                        }
                        _ => 0,
                    };
                    if stars > limits.max_wildcards {
                        return Err(PatternError::invalid(TOO_COMPLEX));
                    }
                }
            }
        }
        Ok(Pattern { branches })
    }

    /// Parses a pattern given as a JSON value (serialised, then parsed as text).
    pub fn from_value(value: &serde_json::Value) -> Result<Pattern, PatternError> {
        let text = serde_json::to_string(value).unwrap_or_default();
        Pattern::parse(&text)
    }

    /// The dot-joined field paths this pattern refers to.
    pub fn paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .branches
            .iter()
            .flat_map(|b| b.conds.iter().map(|c| c.path.as_str()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Does this pattern match the event? A convenience for one pattern and one event;
    /// use [`crate::RuleSet`] to match many patterns at once.
    pub fn matches(&self, event: &serde_json::Value) -> bool {
        crate::reference::matches(self, event)
    }
}

fn star_count(w: &[WildPart]) -> usize {
    w.iter().filter(|p| matches!(p, WildPart::Star)).count()
}

struct Compiler<'l> {
    limits: &'l Limits,
    /// The branches built so far; each is an ordered path → matchers map.
    rules: Vec<Vec<Condition>>,
}

fn join(path: &[String], key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        let mut s = path.join(".");
        s.push('.');
        s.push_str(key);
        s
    }
}

impl Compiler<'_> {
    fn object(
        &mut self,
        path: &mut Vec<String>,
        fields: &[(String, PVal)],
        in_or: bool,
    ) -> Result<(), String> {
        for (key, val) in fields {
            if key == "$or" {
                self.or(path, val)?;
                continue;
            }
            if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
                return Err(format!(
                    "{key} is Ruler reserved fieldName which cannot be used inside $or."
                ));
            }
            match val {
                PVal::Obj(inner) => {
                    path.push(key.clone());
                    self.object(path, inner, in_or)?;
                    path.pop();
                }
                PVal::Arr(items) => self.write(join(path, key), items)?,
                _ => return Err(format!("\"{key}\" must be an object or an array")),
            }
        }
        if fields.is_empty() {
            return Err("Empty objects are not allowed".into());
        }
        Ok(())
    }

    fn or(&mut self, path: &mut Vec<String>, val: &PVal) -> Result<(), String> {
        let current = std::mem::take(&mut self.rules);
        let PVal::Arr(items) = val else {
            return Err("It must be an Array followed with $or.".into());
        };
        let mut out = Vec::new();
        for item in items {
            let PVal::Obj(fields) = item else {
                return Err("Only JSON object is allowed in array of $or relationship.".into());
            };
            let mut branch = current.clone();
            if branch.is_empty() {
                branch.push(Vec::new());
            }
            let saved = std::mem::replace(&mut self.rules, branch);
            self.object(path, fields, true)?;
            let branch = std::mem::replace(&mut self.rules, saved);
            out.extend(branch);
            if out.len() > self.limits.max_branches {
                return Err(format!(
                    "$or expands to more than {} match branches",
                    self.limits.max_branches
                ));
            }
        }
        if items.len() < 2 {
            return Err("There must have at least 2 Objects in $or relationship.".into());
        }
        self.rules = out;
        Ok(())
    }

    fn write(&mut self, name: String, items: &[PVal]) -> Result<(), String> {
        let mut matchers = Vec::with_capacity(items.len());
        for item in items {
            match item {
                PVal::Obj(fields) => matchers.push(match_expression(fields)?),
                PVal::Str(s) => matchers.push(Matcher::ExactStr {
                    s: s.clone(),
                    ip: values::parse_ip(s),
                }),
                PVal::Num(n) => matchers.push(Matcher::ExactNum {
                    text: n.clone(),
                    q: fixed6(n.as_bytes()),
                }),
                PVal::Null => matchers.push(Matcher::Null),
                PVal::Bool(b) => matchers.push(Matcher::Bool(*b)),
                PVal::Arr(_) => {
                    return Err("Match value must be String, number, true, false, or null".into())
                }
            }
        }
        if matchers.is_empty() {
            return Err("Empty arrays are not allowed".into());
        }
        if self.rules.is_empty() {
            self.rules.push(Vec::new());
        }
        for rule in &mut self.rules {
            match rule.iter_mut().find(|c| c.path == name) {
                Some(c) => c.matchers = matchers.clone(),
                None => rule.push(Condition {
                    path: name.clone(),
                    matchers: matchers.clone(),
                }),
            }
        }
        Ok(())
    }
}

fn only_one(extra: bool) -> Result<(), String> {
    if extra {
        Err("Only one key allowed in match expression".into())
    } else {
        Ok(())
    }
}

fn too_many(extra: bool) -> Result<(), String> {
    if extra {
        Err("Too many elements in numeric expression".into())
    } else {
        Ok(())
    }
}

fn match_expression(fields: &[(String, PVal)]) -> Result<Matcher, String> {
    let Some((name, val)) = fields.first() else {
        return Err("Match expression name not found".into());
    };
    let extra = fields.len() > 1;
    match name.as_str() {
        "exact" => {
            let PVal::Str(s) = val else {
                return Err("exact match pattern must be a string".into());
            };
            only_one(extra)?;
            Ok(Matcher::ExactStr {
                s: s.clone(),
                ip: None,
            })
        }
        "prefix" | "suffix" => {
            let is_prefix = name == "prefix";
            if let PVal::Obj(inner) = val {
                let Some((k, v)) = inner.first() else {
                    return Err(if is_prefix {
                        "Prefix expression name not found".into()
                    } else {
                        "Suffix expression name not found".into()
                    });
                };
                if k != "equals-ignore-case" {
                    return Err(if is_prefix {
                        format!("Unsupported prefix pattern: {k}")
                    } else {
                        format!("Unsupported suffix pattern: {k}")
                    });
                }
                let PVal::Str(s) = v else {
                    return Err("equals-ignore-case match pattern must be a string".into());
                };
                only_one(inner.len() > 1)?;
                only_one(extra)?;
                let f = values::fold(s);
                return Ok(if is_prefix {
                    Matcher::PrefixIc(f)
                } else {
                    Matcher::SuffixIc(f)
                });
            }
            let PVal::Str(s) = val else {
                return Err(format!("{name} match pattern must be a string"));
            };
            only_one(extra)?;
            Ok(if is_prefix {
                Matcher::Prefix(s.clone())
            } else {
                Matcher::Suffix(s.clone())
            })
        }
        "numeric" => {
            let PVal::Arr(items) = val else {
                return Err("Value of numeric must be an array.".into());
            };
            let m = numeric(items)?;
            too_many(extra)?;
            Ok(m)
        }
        "anything-but" => anything_but(val, extra),
        "exists" => {
            let PVal::Bool(b) = val else {
                return Err("exists match pattern must be either true or false.".into());
            };
            only_one(extra)?;
            Ok(Matcher::Exists(*b))
        }
        "cidr" => {
            let PVal::Str(s) = val else {
                return Err("prefix match pattern must be a string".into());
            };
            let r = values::parse_cidr(s)?;
            only_one(extra)?;
            Ok(Matcher::Cidr(r))
        }
        "equals-ignore-case" => {
            let PVal::Str(s) = val else {
                return Err("equals-ignore-case match pattern must be a string".into());
            };
            only_one(extra)?;
            Ok(Matcher::EqualsIc(values::fold(s)))
        }
        "wildcard" => {
            let PVal::Str(s) = val else {
                return Err("wildcard match pattern must be a string".into());
            };
            let w = values::parse_wildcard(s, 1)?;
            only_one(extra)?;
            Ok(Matcher::Wildcard(w))
        }
        _ => Err(format!("Unrecognized match type {name}")),
    }
}

fn num_text(v: Option<&PVal>) -> Option<&str> {
    match v {
        Some(PVal::Num(n)) => Some(n),
        _ => None,
    }
}

fn token_text(v: Option<&PVal>) -> String {
    v.map_or_else(|| "]".to_string(), PVal::token_text)
}

fn q(text: &str) -> Result<i64, String> {
    fixed6(text.as_bytes()).ok_or_else(|| RANGE_ERR.to_string())
}

fn numeric(items: &[PVal]) -> Result<Matcher, String> {
    let Some(PVal::Str(op)) = items.first() else {
        return Err(format!(
            "Invalid member in numeric match: {}",
            token_text(items.first())
        ));
    };
    let val = num_text(items.get(1));
    match op.as_str() {
        "=" => {
            let Some(v) = val else {
                return Err("Value of equals must be numeric".into());
            };
            too_many(items.len() > 2)?;
            let x = q(v)?;
            Ok(Matcher::Numeric {
                lo: Some((x, false)),
                hi: Some((x, false)),
            })
        }
        ">" | ">=" => {
            let Some(v) = val else {
                return Err(format!("Value of {op} must be numeric"));
            };
            let open_bottom = op == ">";
            if items.len() == 2 {
                return Ok(Matcher::Numeric {
                    lo: Some((q(v)?, open_bottom)),
                    hi: None,
                });
            }
            let Some(PVal::Str(op2)) = items.get(2) else {
                return Err(format!(
                    "Bad value in numeric range: {}",
                    token_text(items.get(2))
                ));
            };
            let open_top = match op2.as_str() {
                "<" => true,
                "<=" => false,
                _ => return Err(format!("Bad numeric range operator: {op2}")),
            };
            let Some(top) = num_text(items.get(3)) else {
                return Err(format!("Value of {op2} must be numeric"));
            };
            if items.len() > 4 {
                return Err("Too many terms in numeric range expression".into());
            }
            let (lo, hi) = (q(v)?, q(top)?);
            if lo >= hi {
                return Err("Bottom must be less than top".into());
            }
            Ok(Matcher::Numeric {
                lo: Some((lo, open_bottom)),
                hi: Some((hi, open_top)),
            })
        }
        "<" | "<=" => {
            let Some(v) = val else {
                return Err(format!("Value of {op} must be numeric"));
            };
            too_many(items.len() > 2)?;
            Ok(Matcher::Numeric {
                lo: None,
                hi: Some((q(v)?, op == "<")),
            })
        }
        _ => Err(format!("Unrecognized numeric range operator: {op}")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum AbKind {
    Plain,
    IgnoreCase,
    Prefix,
    Suffix,
    Wildcard,
}

fn anything_but(val: &PVal, extra: bool) -> Result<Matcher, String> {
    let (kind, v, inner_extra) = if let PVal::Obj(inner) = val {
        let Some((k, v)) = inner.first() else {
            return Err("Anything-But expression name not found".into());
        };
        let kind = match k.as_str() {
            "equals-ignore-case" => AbKind::IgnoreCase,
            "prefix" => AbKind::Prefix,
            "suffix" => AbKind::Suffix,
            "wildcard" => AbKind::Wildcard,
            _ => return Err(format!("Unsupported anything-but pattern: {k}")),
        };
        (kind, v, inner.len() > 1)
    } else {
        (AbKind::Plain, val, false)
    };
    let items: Vec<&PVal> = match v {
        PVal::Arr(items) => items.iter().collect(),
        PVal::Str(_) | PVal::Num(_) => vec![v],
        _ => {
            return Err(
                "Value of anything-but must be an array or single string/number value.".into(),
            )
        }
    };
    let is_list = matches!(v, PVal::Arr(_));
    let ab = if kind == AbKind::Plain {
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        for item in &items {
            match item {
                PVal::Str(s) => strings.push(s.clone()),
                PVal::Num(n) => numbers.push(q(n)?),
                _ => {
                    return Err(
                        "Inside anything but list, start|null|boolean is not supported.".into(),
                    )
                }
            }
        }
        if is_list && (strings.is_empty() == numbers.is_empty()) {
            return Err("Inside anything but list, either all values are number or string, mixed type is not supported".into());
        }
        if numbers.is_empty() {
            AnythingBut::Strings(strings)
        } else {
            AnythingBut::Numbers(numbers)
        }
    } else {
        let mut texts = Vec::new();
        for item in &items {
            let PVal::Str(s) = item else {
                return Err(match kind {
                    AbKind::IgnoreCase => "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.".into(),
                    AbKind::Wildcard => "wildcard match pattern must be a string".into(),
                    _ => "prefix/suffix match pattern must be a string".into(),
                });
            };
            if matches!(kind, AbKind::Prefix | AbKind::Suffix) && s.is_empty() {
                return Err("Null prefix/suffix not allowed".into());
            }
            texts.push(s.clone());
        }
        match kind {
            AbKind::IgnoreCase => {
                AnythingBut::IgnoreCase(texts.iter().map(|s| values::fold(s)).collect())
            }
            AbKind::Prefix => AnythingBut::Prefixes(texts),
            AbKind::Suffix => AnythingBut::Suffixes(texts),
            _ => AnythingBut::Wildcards(
                texts
                    .iter()
                    .map(|s| values::parse_wildcard(s, 1))
                    .collect::<Result<_, _>>()?,
            ),
        }
    };
    too_many(inner_extra)?;
    too_many(extra)?;
    Ok(Matcher::AnythingBut(ab))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(p: &str) -> String {
        match Pattern::parse(p) {
            Err(PatternError::Invalid { reason }) => reason,
            other => panic!("expected an invalid pattern, got {other:?}"),
        }
    }

    #[test]
    fn structural_errors() {
        assert_eq!(reason("[1]"), "Filter is not an object");
        assert_eq!(reason("{}"), "Empty objects are not allowed");
        assert_eq!(reason(r#"{"a": []}"#), "Empty arrays are not allowed");
        assert_eq!(reason(r#"{"a": 1}"#), "\"a\" must be an object or an array");
        assert_eq!(
            reason(r#"{"a": [[1]]}"#),
            "Match value must be String, number, true, false, or null"
        );
        assert_eq!(reason(r#"{"a": [{}]}"#), "Match expression name not found");
        assert_eq!(
            reason(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#),
            "Only one key allowed in match expression"
        );
    }

    #[test]
    fn numeric_errors() {
        assert_eq!(
            reason(r#"{"a": [{"numeric": []}]}"#),
            "Invalid member in numeric match: ]"
        );
        assert_eq!(
            reason(r#"{"a": [{"numeric": ["=", "x"]}]}"#),
            "Value of equals must be numeric"
        );
        assert_eq!(
            reason(r#"{"a": [{"numeric": ["=", 1, 2]}]}"#),
            "Too many elements in numeric expression"
        );
        assert_eq!(
            reason(r#"{"a": [{"numeric": [">", 5, "<", 5]}]}"#),
            "Bottom must be less than top"
        );
        assert_eq!(
            reason(r#"{"a": [{"numeric": ["<", 5, ">", 1]}]}"#),
            "Too many elements in numeric expression"
        );
        assert_eq!(
            reason(r#"{"a": [{"numeric": ["!", 5]}]}"#),
            "Unrecognized numeric range operator: !"
        );
        assert_eq!(reason(r#"{"a": [{"numeric": [">", 6e9]}]}"#), RANGE_ERR);
        assert_eq!(
            reason(r#"{"a": [{"numeric": [">", 1, "<", 2, 3]}]}"#),
            "Too many terms in numeric range expression"
        );
    }

    #[test]
    fn or_rules() {
        let p = Pattern::parse(
            r#"{"s": ["x"], "$or": [{"a": [1]}, {"b": [2], "$or": [{"c": [3]}, {"d": [4]}]}]}"#,
        )
        .unwrap();
        let shapes: Vec<Vec<&str>> = p
            .branches
            .iter()
            .map(|b| b.conds.iter().map(|c| c.path.as_str()).collect())
            .collect();
        assert_eq!(
            shapes,
            vec![vec!["s", "a"], vec!["s", "b", "c"], vec!["s", "b", "d"]]
        );
        assert_eq!(
            reason(r#"{"$or": [{"a": [1]}]}"#),
            "There must have at least 2 Objects in $or relationship."
        );
        assert_eq!(
            reason(r#"{"$or": {"a": [1]}}"#),
            "It must be an Array followed with $or."
        );
        assert_eq!(
            reason(r#"{"$or": [{"numeric": [1]}, {"a": [1]}]}"#),
            "numeric is Ruler reserved fieldName which cannot be used inside $or."
        );
    }

    #[test]
    fn last_duplicate_path_wins() {
        let p = Pattern::parse(r#"{"a": [{"prefix": "us-"}], "a": [{"anything-but": "us-east"}]}"#)
            .unwrap();
        assert_eq!(p.branches[0].conds.len(), 1);
        assert!(matches!(
            p.branches[0].conds[0].matchers[0],
            Matcher::AnythingBut(_)
        ));
    }

    #[test]
    fn hostile_patterns_are_errors() {
        // deep nesting
        let deep = format!("{}{}", "{\"a\":".repeat(5000), "[1]");
        assert!(Pattern::parse_with(
            &deep,
            &Limits {
                max_pattern_len: 1 << 20,
                ..Limits::default()
            }
        )
        .is_err());
        // too long
        let long = format!("{{\"a\": [\"{}\"]}}", "x".repeat(5000));
        assert!(matches!(
            Pattern::parse(&long),
            Err(PatternError::TooLarge { .. })
        ));
        // many wildcards
        assert_eq!(
            reason(r#"{"a": [{"wildcard": "*a*b*c*d*e*f"}]}"#),
            TOO_COMPLEX
        );
        // $or explosion
        let or = r#"{"$or": [{"a": [1]}, {"b": [1]}]}"#;
        let mut nested = String::from("{");
        for i in 0..12 {
            nested.push_str(&format!("\"k{i}\": {or},"));
        }
        nested.push_str("\"z\": [1]}");
        assert!(reason(&nested).contains("match branches"));
    }
}

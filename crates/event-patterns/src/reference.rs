//! The reference evaluator: the matching semantics written as plainly as possible over
//! a `serde_json::Value`. It is the executable specification the compiled
//! [`crate::RuleSet`] is tested against (differential tests), and the implementation
//! behind [`crate::Pattern::matches`].
//!
//! Semantics:
//! * the event is flattened into leaves (strings, numbers, booleans, null); a leaf's
//!   path joins the object keys leading to it with `.`; arrays do not add to the path,
//!   each of their elements is flattened at the array's path;
//! * a condition on a path holds when some leaf at that path is accepted by one of its
//!   matchers, or when `{"exists": false}` is among its matchers and no leaf has that path;
//! * a branch holds when all its conditions hold with leaves that are *array-consistent*:
//!   no two chosen leaves lie in different elements of the same array;
//! * a pattern matches when one of its branches holds.

use crate::pattern::{Branch, Leaf, Pattern};
use serde_json::Value;

/// One flattened leaf: path, value, and the (array id, element index) pairs leading to it.
struct Flat<'a> {
    path: String,
    val: FlatVal<'a>,
    trail: Vec<(u32, u32)>,
}

enum FlatVal<'a> {
    Str(&'a str),
    /// Number text as `serde_json` renders it.
    Num(String),
    Bool(bool),
    Null,
}

impl Flat<'_> {
    fn leaf(&self) -> Leaf<'_> {
        match &self.val {
            FlatVal::Str(s) => Leaf::Str(s),
            FlatVal::Num(n) => Leaf::Num(n),
            FlatVal::Bool(b) => Leaf::Bool(*b),
            FlatVal::Null => Leaf::Null,
        }
    }
}

fn flatten<'a>(
    v: &'a Value,
    path: Option<&str>,
    trail: &mut Vec<(u32, u32)>,
    next: &mut u32,
    out: &mut Vec<Flat<'a>>,
) {
    let val = match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = match path {
                    None => k.clone(),
                    Some(path) => format!("{path}.{k}"),
                };
                flatten(child, Some(&p), trail, next, out);
            }
            return;
        }
        Value::Array(items) => {
            let id = *next;
            *next += 1;
            for (i, item) in items.iter().enumerate() {
                trail.push((id, i as u32));
                flatten(item, path, trail, next, out);
                trail.pop();
            }
            return;
        }
        Value::String(s) => FlatVal::Str(s),
        Value::Number(n) => FlatVal::Num(n.to_string()),
        Value::Bool(b) => FlatVal::Bool(*b),
        Value::Null => FlatVal::Null,
    };
    out.push(Flat {
        path: path.unwrap_or_default().to_string(),
        val,
        trail: trail.clone(),
    });
}

fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(id, i)| b.iter().all(|(id2, i2)| id != id2 || i == i2))
}

fn branch_holds(branch: &Branch, leaves: &[Flat<'_>]) -> bool {
    // per condition: None = satisfied by absence; Some(trails) = candidate leaves
    let mut choices: Vec<Vec<&[(u32, u32)]>> = Vec::new();
    for cond in &branch.conds {
        let at_path: Vec<&Flat<'_>> = leaves.iter().filter(|f| f.path == cond.path).collect();
        if at_path.is_empty() && cond.absent_ok() {
            continue;
        }
        let cands: Vec<&[(u32, u32)]> = at_path
            .iter()
            .filter(|f| cond.matchers.iter().any(|m| m.matches(&f.leaf())))
            .map(|f| f.trail.as_slice())
            .collect();
        if cands.is_empty() {
            return false;
        }
        choices.push(cands);
    }
    fn search<'t>(choices: &[Vec<&'t [(u32, u32)]>], chosen: &mut Vec<&'t [(u32, u32)]>) -> bool {
        let Some((first, rest)) = choices.split_first() else {
            return true;
        };
        for t in first {
            if chosen.iter().all(|c| consistent(c, t)) {
                chosen.push(t);
                if search(rest, chosen) {
                    return true;
                }
                chosen.pop();
            }
        }
        false
    }
    search(&choices, &mut Vec::new())
}

/// Does `pattern` match `event`?
pub fn matches(pattern: &Pattern, event: &Value) -> bool {
    let mut leaves = Vec::new();
    flatten(event, None, &mut Vec::new(), &mut 0, &mut leaves);
    pattern.branches.iter().any(|b| branch_holds(b, &leaves))
}

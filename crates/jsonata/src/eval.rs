//! The evaluator: paths, sequences, tuple streams, operators, functions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use crate::ast::{BinOp, Kind, LambdaDef, Node, SortTerm, Stage};
use crate::error::{Error, Inserts};
use crate::functions::{self, Builtin};
use crate::value::{deep_equal, Flags, Lambda, Map, Partial, TailCall, Value};
use crate::Environment;

type VarMap = HashMap<String, Value, foldhash::fast::RandomState>;

/// A variable scope.
pub(crate) struct Frame {
    vars: RefCell<VarMap>,
    parent: Option<Rc<Frame>>,
}

impl Frame {
    pub fn root() -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(HashMap::default()),
            parent: None,
        })
    }
    pub fn child(parent: &Rc<Frame>) -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(HashMap::default()),
            parent: Some(parent.clone()),
        })
    }
    pub fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        let mut cur = self.parent.clone();
        while let Some(f) = cur {
            if let Some(v) = f.vars.borrow().get(name) {
                return Some(v.clone());
            }
            cur = f.parent.clone();
        }
        None
    }
}

/// Per-evaluation state: limits, clock, random source and bookkeeping.
pub(crate) struct Evaluator<'e> {
    pub env: &'e Environment,
    depth: usize,
    steps: u64,
    /// Frames that may sit in reference cycles with closures; cleared at the end.
    frames: Vec<Weak<Frame>>,
    pub now_millis: i64,
    rng: u64,
    /// The environment of the function call being applied (for `$eval`).
    pub call_env: Option<Rc<Frame>>,
    /// Environment variables converted from JSON once per evaluation.
    var_cache: RefCell<VarMap>,
    /// Per-evaluation bindings (they shadow host functions and environment variables).
    pub extra_vars: &'e [(&'e str, &'e serde_json::Value)],
}

fn err_pos(mut e: Error, pos: usize) -> Error {
    if e.position.is_none() {
        e.position = Some(pos);
    }
    e
}

/// `fn.boolean`: JSONata truthiness; `None` for undefined.
pub(crate) fn boolean(v: &Value) -> Option<bool> {
    // single-member arrays take the truth of their member; longer arrays are true when any
    // member is (iterative, so deeply nested arrays cannot exhaust the stack)
    let mut cur = v;
    loop {
        match cur {
            Value::Undefined => return None,
            Value::Array(a, _) if a.len() == 1 => cur = &a[0],
            Value::Array(a, _) => {
                let mut stack: Vec<&Value> = a.iter().collect();
                while let Some(x) = stack.pop() {
                    match x {
                        Value::Array(inner, _) => stack.extend(inner.iter()),
                        other => {
                            if scalar_truth(other) {
                                return Some(true);
                            }
                        }
                    }
                }
                return Some(false);
            }
            other => return Some(scalar_truth(other)),
        }
    }
}

fn scalar_truth(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => *n != 0.0,
        Value::Object(o) => !o.is_empty(),
        Value::Bool(b) => *b,
        _ => false,
    }
}

/// `fn.append`.
pub(crate) fn append(a: Value, b: Value) -> Value {
    if a.is_undefined() {
        return b;
    }
    if b.is_undefined() {
        return a;
    }
    let mut out = a.members();
    match b {
        Value::Array(items, _) => out.extend(items.iter().cloned()),
        other => out.push(other),
    }
    Value::array(out)
}

fn tuple_get(t: &Value, key: &str) -> Value {
    match t {
        Value::Object(m) => m.get(key).cloned().unwrap_or_default(),
        _ => Value::Undefined,
    }
}

fn tuple_focus(t: &Value) -> Value {
    tuple_get(t, "@")
}

/// Depth-first leaves of nested arrays, in order (iterative).
fn flatten_into(v: &Value, out: &mut Vec<Value>) {
    let mut stack: Vec<&Value> = vec![v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Array(a, _) => stack.extend(a.iter().rev()),
            other => out.push(other.clone()),
        }
    }
}

impl<'e> Evaluator<'e> {
    pub fn new(env: &'e Environment) -> Evaluator<'e> {
        Evaluator {
            env,
            depth: 0,
            steps: 0,
            frames: Vec::new(),
            now_millis: env.now_millis,
            rng: env.random_seed | 1,
            call_env: None,
            var_cache: RefCell::new(HashMap::default()),
            extra_vars: &[],
        }
    }

    /// Next pseudo-random number in [0, 1) (xorshift64*), or the host's source.
    pub fn random(&mut self) -> f64 {
        if let Some(f) = &self.env.random {
            return f();
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Charge the step budget for work proportional to `n` (large strings and arrays).
    pub fn charge(&mut self, n: usize, pos: usize) -> Result<(), Error> {
        self.steps = self.steps.saturating_add(n as u64);
        if self.steps > self.env.max_steps {
            return Err(Error::value(
                "D1012",
                Some(pos),
                self.env.max_steps.to_string(),
            ));
        }
        Ok(())
    }

    /// Charge for the size of a freshly built string or array.
    fn charge_for(&mut self, v: &Value, pos: usize) -> Result<(), Error> {
        match v {
            Value::String(s) if s.len() > 64 => self.charge(s.len() / 8, pos),
            Value::Array(a, _) if a.len() > 64 => self.charge(a.len(), pos),
            _ => Ok(()),
        }
    }

    /// Break closure/frame reference cycles created during the evaluation.
    pub fn cleanup(&mut self) {
        for w in self.frames.drain(..) {
            if let Some(f) = w.upgrade() {
                f.vars.borrow_mut().clear();
            }
        }
    }

    pub fn bind(&mut self, frame: &Rc<Frame>, name: &str, v: Value) {
        if matches!(
            v,
            Value::Lambda(_)
                | Value::Partial(_)
                | Value::Transform(_)
                | Value::Object(_)
                | Value::Array(..)
        ) {
            self.frames.push(Rc::downgrade(frame));
        }
        frame.vars.borrow_mut().insert(name.to_string(), v);
    }

    fn frame_from_tuple(&mut self, env: &Rc<Frame>, tuple: &Value) -> Rc<Frame> {
        let f = Frame::child(env);
        if let Value::Object(m) = tuple {
            for (k, v) in m.iter() {
                self.bind(&f, k, v.clone());
            }
        }
        f
    }

    /// Evaluate a node.
    pub fn eval(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        self.steps += 1;
        if self.steps > self.env.max_steps {
            return Err(Error::value(
                "D1012",
                Some(node.pos),
                self.env.max_steps.to_string(),
            ));
        }
        self.depth += 1;
        if self.depth > self.env.max_depth {
            self.depth -= 1;
            return Err(Error::code("D1011", Some(node.pos)));
        }
        let r = self.eval_inner(node, input, env);
        self.depth -= 1;
        let v = r?;
        if node.predicate.is_some() || node.group.is_some() || matches!(v, Value::Array(..)) {
            self.eval_post(node, v, env)
        } else {
            Ok(v)
        }
    }

    fn eval_inner(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        match &node.kind {
            Kind::Path(steps) => self.eval_path(node, steps, input, env),
            Kind::Binary(op, l, r) => self.eval_binary(*op, l, r, node.pos, input, env),
            Kind::Negate(..) => self.k_negate(node, input, env),
            Kind::Array(..) => self.k_array(node, input, env),
            Kind::Object(pairs) => self.eval_group(pairs, node.pos, input.clone(), env),
            Kind::Name(n) => Ok(functions::lookup(input, n)),
            Kind::Str(s) => Ok(Value::str(s)),
            Kind::Num(n) => Ok(Value::Number(*n)),
            Kind::Bool(b) => Ok(Value::Bool(*b)),
            Kind::Null => Ok(Value::Null),
            Kind::Wildcard => self.k_wildcard(node, input, env),
            Kind::Descendant => self.k_descendant(node, input, env),
            Kind::Parent(label) => Ok(env.lookup(label).unwrap_or_default()),
            Kind::Condition(..) => self.k_condition(node, input, env),
            Kind::Elvis(..) => self.k_elvis(node, input, env),
            Kind::Coalesce(..) => self.k_coalesce(node, input, env),
            Kind::Block(..) => self.k_block(node, input, env),
            Kind::Bind(..) => self.k_bind(node, input, env),
            Kind::Regex(..) => self.k_regex(node, input, env),
            Kind::Call { .. } => self.k_call(node, input, env),
            Kind::Partial { proc, args } => self.eval_partial(proc, args, input, env),
            Kind::Placeholder => Ok(Value::Undefined),
            Kind::Variable(..) => self.k_variable(node, input, env),
            Kind::Lambda(def) => Ok(Value::Lambda(Rc::new(Lambda {
                def: def.clone(),
                env: env.clone(),
                input: input.clone(),
            }))),
            Kind::Apply(l, r) => self.eval_apply(l, r, node.pos, input, env),
            Kind::Sort(..) => self.k_sort(node, input, env),
            Kind::Transform(def) => Ok(Value::Transform(Rc::new(crate::value::TransformValue {
                def: def.clone(),
                env: env.clone(),
            }))),
        }
    }

    #[inline(never)]
    fn k_negate(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Negate(e) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let v = self.eval(e, input, env)?;
            match v {
                Value::Undefined => Value::Undefined,
                Value::Number(n) => Value::Number(-n),
                other => {
                    return Err(Error::with(
                        "D1002",
                        Some(node.pos),
                        Inserts {
                            token: Some("-"),
                            value: Some(functions::display(&other)),
                            ..Default::default()
                        },
                    ))
                }
            }
        })
    }

    #[inline(never)]
    fn k_array(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Array(items) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let mut out: Vec<Value> = Vec::new();
            for item in items {
                let v = self.eval(item, input, env)?;
                if v.is_undefined() {
                    continue;
                }
                if matches!(item.kind, Kind::Array(_)) {
                    out.push(v);
                } else {
                    match v {
                        Value::Array(a, _) => out.extend(a.iter().cloned()),
                        other => out.push(other),
                    }
                }
            }
            let flags = if node.consarray {
                Flags::CONS
            } else {
                Flags::NONE
            };
            Value::array_with(out, flags)
        })
    }

    #[inline(never)]
    fn k_wildcard(&mut self, node: &Node, input: &Value, _env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Wildcard = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let mut out = Vec::new();
            let mut src = input.clone();
            if let Value::Array(a, f) = input {
                if f.has(Flags::OUTER_WRAPPER) && !a.is_empty() {
                    src = a[0].clone();
                }
            }
            let mut plain = false;
            let values: Vec<Value> = match &src {
                Value::Object(m) => m.values().cloned().collect(),
                Value::Array(a, _) => a.to_vec(),
                _ => Vec::new(),
            };
            {
                for v in values.iter() {
                    match v {
                        Value::Array(..) => {
                            flatten_into(v, &mut out);
                            plain = true;
                        }
                        other => out.push(other.clone()),
                    }
                }
            }
            if plain {
                Value::array(out)
            } else {
                Value::seq(out)
            }
        })
    }

    #[inline(never)]
    fn k_descendant(
        &mut self,
        node: &Node,
        input: &Value,
        _env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let Kind::Descendant = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            if input.is_undefined() {
                Value::Undefined
            } else {
                let mut out = Vec::new();
                recurse_descendants(input, &mut out);
                if out.len() == 1 {
                    out.pop().unwrap_or_default()
                } else {
                    Value::seq(out)
                }
            }
        })
    }

    #[inline(never)]
    fn k_condition(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Condition(c, t, e) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let cv = self.eval(c, input, env)?;
            if boolean(&cv) == Some(true) {
                self.eval(t, input, env)?
            } else if let Some(e) = e {
                self.eval(e, input, env)?
            } else {
                Value::Undefined
            }
        })
    }

    #[inline(never)]
    fn k_elvis(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Elvis(l, r) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let lv = self.eval(l, input, env)?;
            if boolean(&lv) == Some(true) {
                lv
            } else {
                self.eval(r, input, env)?
            }
        })
    }

    #[inline(never)]
    fn k_coalesce(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Coalesce(l, r) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let lv = self.eval(l, input, env)?;
            if !lv.is_undefined() {
                lv
            } else {
                self.eval(r, input, env)?
            }
        })
    }

    #[inline(never)]
    fn k_block(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Block(items) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let frame = Frame::child(env);
            let mut result = Value::Undefined;
            for item in items {
                result = self.eval(item, input, &frame)?;
            }
            result
        })
    }

    #[inline(never)]
    fn k_bind(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Bind(name, rhs) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            let v = self.eval(rhs, input, env)?;
            self.bind(env, name, v.clone());
            v
        })
    }

    #[inline(never)]
    fn k_regex(&mut self, node: &Node, _input: &Value, _env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Regex(re) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok(Value::Regex(Rc::new(crate::value::RegexValue {
            regex: re.clone(),
        })))
    }

    #[inline(never)]
    fn k_call(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Call { proc, args, tail } = &node.kind else {
            return Ok(Value::Undefined);
        };
        self.eval_call(node, proc, args, *tail, None, input, env)
    }

    #[inline(never)]
    fn k_variable(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Variable(name) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            if name.is_empty() {
                match input {
                    Value::Array(a, f) if f.has(Flags::OUTER_WRAPPER) => {
                        a.first().cloned().unwrap_or_default()
                    }
                    other => other.clone(),
                }
            } else {
                self.lookup_var(env, name)
            }
        })
    }

    #[inline(never)]
    fn k_sort(&mut self, node: &Node, input: &Value, env: &Rc<Frame>) -> Result<Value, Error> {
        let Kind::Sort(terms) = &node.kind else {
            return Ok(Value::Undefined);
        };
        Ok({
            // a sort outside a path (not reachable from the parser, kept total)
            self.eval_sort(terms, node.pos, input.clone(), env)?
        })
    }

    /// Predicates, grouping and singleton unwrapping applied after a node's value.
    #[inline(never)]
    fn eval_post(
        &mut self,
        node: &Node,
        mut result: Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        if let Some(preds) = &node.predicate {
            for st in preds {
                if let Stage::Filter(p) = st {
                    result = self.eval_filter(p, result, env)?;
                }
            }
        }
        if !matches!(node.kind, Kind::Path(_)) {
            if let Some(g) = &node.group {
                result = self.eval_group(g, node.group_pos, result, env)?;
            }
        }
        if let Value::Array(a, f) = &result {
            if f.has(Flags::SEQUENCE) && !f.has(Flags::TUPLE_STREAM) {
                let mut f = *f;
                if node.keep_array {
                    f = f.with(Flags::KEEP_SINGLETON);
                }
                if a.is_empty() {
                    result = Value::Undefined;
                } else if a.len() == 1 && !f.has(Flags::KEEP_SINGLETON) {
                    result = a[0].clone();
                } else {
                    result = Value::Array(a.clone(), f);
                }
            }
        }
        Ok(result)
    }

    pub fn lookup_var(&self, env: &Rc<Frame>, name: &str) -> Value {
        if let Some(v) = env.lookup(name) {
            return v;
        }
        if let Some(v) = self.var_cache.borrow().get(name) {
            return v.clone();
        }
        if let Some((_, json)) = self.extra_vars.iter().find(|(n, _)| *n == name) {
            let v = crate::value::from_json(json);
            self.var_cache
                .borrow_mut()
                .insert(name.to_string(), v.clone());
            return v;
        }
        if let Some((f, sig)) = self.env.natives.get(name) {
            return Value::Native(Rc::new(crate::value::NativeValue {
                name: Rc::from(name),
                f: f.clone(),
                signature: sig.clone(),
            }));
        }
        if let Some(v) = self.env.vars.get(name) {
            let v = crate::value::from_json(v);
            self.var_cache
                .borrow_mut()
                .insert(name.to_string(), v.clone());
            return v;
        }
        match Builtin::from_name(name) {
            Some(b) => Value::Builtin(b),
            None => Value::Undefined,
        }
    }

    fn eval_path(
        &mut self,
        node: &Node,
        steps: &[Node],
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        // Fast path: a single field name applied to a non-array value is a plain lookup
        // (same result as the general algorithm, without building sequences).
        if let [step] = steps {
            if let Kind::Name(name) = &step.kind {
                if !matches!(input, Value::Array(..))
                    && !input.is_undefined()
                    && step.stages.is_none()
                    && step.predicate.is_none()
                    && step.group.is_none()
                    && !step.tuple
                    && step.focus.is_none()
                    && step.index.is_none()
                    && !step.keep_array
                    && node.group.is_none()
                    && !node.keep_singleton_array
                {
                    self.steps += 1;
                    return Ok(functions::lookup(input, name));
                }
            }
        }
        if steps.len() > 1
            && !input.is_undefined()
            && node.group.is_none()
            && !node.keep_singleton_array
        {
            if let Some(v) = self.name_path(steps, input, env)? {
                return Ok(v);
            }
        }
        let mut input_seq = match input {
            Value::Array(..)
                if !matches!(steps.first().map(|s| &s.kind), Some(Kind::Variable(_))) =>
            {
                input.clone()
            }
            other => Value::seq(if other.is_undefined() {
                vec![]
            } else {
                vec![other.clone()]
            }),
        };
        // createSequence(undefined) yields an empty sequence; keep JSONata's behaviour of
        // evaluating the first step once against undefined input.
        if input.is_undefined() {
            input_seq = Value::seq(vec![Value::Undefined]);
        }
        let mut result = Value::Undefined;
        let mut is_tuple = false;
        let mut tuples: Option<Vec<Value>> = None;
        let last = steps.len().saturating_sub(1);
        for (i, step) in steps.iter().enumerate() {
            if step.tuple {
                is_tuple = true;
            }
            if i == 0 && step.consarray {
                result = self.eval(step, &input_seq, env)?;
            } else if is_tuple {
                tuples = Some(self.eval_tuple_step(step, &input_seq, tuples.take(), env)?);
            } else {
                result = self.eval_step(step, &input_seq, env, i == last)?;
            }
            if !is_tuple {
                let empty = match &result {
                    Value::Undefined => true,
                    Value::Array(a, _) => a.is_empty(),
                    _ => false,
                };
                if empty {
                    break;
                }
            }
            if step.focus.is_none() {
                input_seq = result.clone();
            }
        }
        if is_tuple {
            let ts = tuples.clone().unwrap_or_default();
            result = if node.tuple {
                // this path is a step of an outer path that seeks a parent: keep the
                // tuple stream so the ancestry travels with it
                Value::array_with(ts, Flags::SEQUENCE.with(Flags::TUPLE_STREAM))
            } else {
                Value::seq(ts.iter().map(tuple_focus).collect())
            };
        }
        if node.keep_singleton_array {
            result = match result {
                Value::Array(a, f) if f.has(Flags::CONS) && !f.has(Flags::SEQUENCE) => {
                    Value::array_with(vec![Value::Array(a, f)], Flags::SEQUENCE)
                }
                Value::Array(a, f) => Value::Array(a, f),
                Value::Undefined => Value::Undefined,
                other => Value::seq(vec![other]),
            };
            result = result.with_flags(Flags::KEEP_SINGLETON);
        }
        if let Some(g) = &node.group {
            let src = if is_tuple {
                Value::array_with(
                    tuples.unwrap_or_default(),
                    Flags::SEQUENCE.with(Flags::TUPLE_STREAM),
                )
            } else {
                result
            };
            result = self.eval_group(g, node.group_pos, src, env)?;
        }
        Ok(result)
    }

    /// Fast path for a path made only of plain field names (`a.b.c`): the same
    /// lookups, flattening and singleton rules as the general algorithm, without
    /// building a sequence per step. `None` when the path is not of that shape.
    fn name_path(
        &mut self,
        steps: &[Node],
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Option<Value>, Error> {
        let plain = steps.iter().enumerate().all(|(i, s)| {
            (matches!(s.kind, Kind::Name(_)) || (i == 0 && matches!(s.kind, Kind::Variable(_))))
                && s.stages.is_none()
                && s.predicate.is_none()
                && s.group.is_none()
                && !s.tuple
                && s.focus.is_none()
                && s.index.is_none()
                && s.ancestor.is_none()
                && !s.keep_array
                && !s.consarray
        });
        if !plain {
            return Ok(None);
        }
        let starts_with_variable = matches!(steps[0].kind, Kind::Variable(_));
        let mut cur: Vec<Value> = match input {
            Value::Array(a, _) if !starts_with_variable => a.to_vec(),
            other => vec![other.clone()],
        };
        let last = steps.len() - 1;
        for (i, step) in steps.iter().enumerate() {
            if i == 0 && starts_with_variable {
                // `$name` (or `$`, `$$`) evaluated once against the whole input
                let v = self.eval(step, input, env)?;
                cur = match v {
                    Value::Undefined => return Ok(Some(Value::seq(vec![]))),
                    Value::Array(a, f) if !f.has(Flags::CONS) => a.to_vec(),
                    other => vec![other],
                };
                if cur.is_empty() {
                    return Ok(Some(Value::seq(cur)));
                }
                continue;
            }
            let Kind::Name(name) = &step.kind else {
                return Ok(None);
            };
            self.charge(cur.len(), step.pos)?;
            let mut results: Vec<Value> = Vec::with_capacity(cur.len());
            for item in &cur {
                let r = match functions::lookup(item, name) {
                    Value::Array(a, f) if f.has(Flags::SEQUENCE) && !f.has(Flags::TUPLE_STREAM) => {
                        if a.is_empty() {
                            Value::Undefined
                        } else if a.len() == 1 && !f.has(Flags::KEEP_SINGLETON) {
                            a[0].clone()
                        } else {
                            Value::Array(a, f)
                        }
                    }
                    other => other,
                };
                if !r.is_undefined() {
                    results.push(r);
                }
            }
            if i == last && results.len() == 1 {
                if let Value::Array(_, f) = &results[0] {
                    if !f.has(Flags::SEQUENCE) {
                        return Ok(results.pop());
                    }
                }
            }
            let mut out = Vec::with_capacity(results.len());
            for r in results {
                match r {
                    Value::Array(a, f) if !f.has(Flags::CONS) => out.extend(a.iter().cloned()),
                    other => out.push(other),
                }
            }
            if out.is_empty() {
                return Ok(Some(Value::seq(out)));
            }
            cur = out;
        }
        Ok(Some(Value::seq(cur)))
    }

    fn eval_step(
        &mut self,
        step: &Node,
        input: &Value,
        env: &Rc<Frame>,
        last: bool,
    ) -> Result<Value, Error> {
        if let Kind::Sort(terms) = &step.kind {
            let mut r = self.eval_sort(terms, step.pos, input.clone(), env)?;
            if let Some(stages) = &step.stages {
                r = self.eval_stages(stages, r, env)?;
            }
            return Ok(r);
        }
        let mut results: Vec<Value> = Vec::new();
        // The reference iterates its input by index: a non-array input (possible after a
        // predicated array-constructor first step) yields no items.
        let items: &[Value] = match input {
            Value::Array(a, _) => a.as_slice(),
            _ => &[],
        };
        for item in items {
            let mut r = self.eval(step, item, env)?;
            if let Some(stages) = &step.stages {
                for st in stages {
                    if let Stage::Filter(p) = st {
                        r = self.eval_filter(p, r, env)?;
                    }
                }
            }
            if !r.is_undefined() {
                results.push(r);
            }
        }
        if last && results.len() == 1 {
            if let Value::Array(_, f) = &results[0] {
                if !f.has(Flags::SEQUENCE) {
                    return Ok(results.pop().unwrap_or_default());
                }
            }
        }
        let mut out = Vec::new();
        for r in results {
            match r {
                Value::Array(a, f) if !f.has(Flags::CONS) => out.extend(a.iter().cloned()),
                other => out.push(other),
            }
        }
        Ok(Value::seq(out))
    }

    fn eval_stages(
        &mut self,
        stages: &[Stage],
        input: Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let mut input = input;
        for st in stages {
            match st {
                Stage::Filter(p) => input = self.eval_filter(p, input, env)?,
                Stage::Index(name) => {
                    if let Value::Array(a, f) = &input {
                        let mut out = Vec::with_capacity(a.len());
                        for (i, t) in a.iter().enumerate() {
                            if let Value::Object(m) = t {
                                let mut m = (**m).clone();
                                m.insert(name.clone(), Value::Number(i as f64));
                                out.push(Value::object(m));
                            } else {
                                out.push(t.clone());
                            }
                        }
                        input = Value::array_with(out, *f);
                    }
                }
            }
        }
        Ok(input)
    }

    fn eval_tuple_step(
        &mut self,
        step: &Node,
        input: &Value,
        tuples: Option<Vec<Value>>,
        env: &Rc<Frame>,
    ) -> Result<Vec<Value>, Error> {
        if let Kind::Sort(terms) = &step.kind {
            let mut result = if let Some(ts) = tuples {
                let v = Value::array_with(ts, Flags::SEQUENCE.with(Flags::TUPLE_STREAM));
                self.eval_sort(terms, step.pos, v, env)?
            } else {
                let sorted = self.eval_sort(terms, step.pos, input.clone(), env)?;
                let mut out = Vec::new();
                for (i, s) in sorted.members().into_iter().enumerate() {
                    let mut m = Map::default();
                    m.insert("@".into(), s);
                    if let Some(ix) = &step.index {
                        m.insert(ix.clone(), Value::Number(i as f64));
                    }
                    out.push(Value::object(m));
                }
                Value::array_with(out, Flags::SEQUENCE.with(Flags::TUPLE_STREAM))
            };
            if let Some(stages) = &step.stages {
                result = self.eval_stages(stages, result.with_flags(Flags::TUPLE_STREAM), env)?;
            }
            return Ok(result.members());
        }
        let tuples = match tuples {
            Some(t) => t,
            None => input
                .members()
                .into_iter()
                .map(|item| {
                    let mut m = Map::default();
                    m.insert("@".into(), item);
                    Value::object(m)
                })
                .collect(),
        };
        let mut result = Vec::new();
        for tuple in &tuples {
            let step_env = self.frame_from_tuple(env, tuple);
            let focus = tuple_focus(tuple);
            let res = self.eval(step, &focus, &step_env)?;
            if res.is_undefined() {
                continue;
            }
            let (items, is_ts) = match &res {
                Value::Array(a, f) => (a.to_vec(), f.has(Flags::TUPLE_STREAM)),
                other => (vec![other.clone()], false),
            };
            let base = match tuple {
                Value::Object(m) => (**m).clone(),
                _ => Map::default(),
            };
            for (bb, item) in items.into_iter().enumerate() {
                let mut t = base.clone();
                if is_ts {
                    if let Value::Object(m) = &item {
                        for (k, v) in m.iter() {
                            t.insert(k.clone(), v.clone());
                        }
                    }
                } else {
                    if let Some(fv) = &step.focus {
                        t.insert(fv.clone(), item);
                        t.insert("@".into(), focus.clone());
                    } else {
                        t.insert("@".into(), item);
                    }
                    if let Some(ix) = &step.index {
                        t.insert(ix.clone(), Value::Number(bb as f64));
                    }
                    if let Some(anc) = &step.ancestor {
                        t.insert(anc.clone(), focus.clone());
                    }
                }
                result.push(Value::object(t));
            }
        }
        let mut rv = Value::array_with(result, Flags::SEQUENCE.with(Flags::TUPLE_STREAM));
        if let Some(stages) = &step.stages {
            rv = self.eval_stages(stages, rv, env)?;
        }
        Ok(rv.members())
    }

    pub fn eval_filter(
        &mut self,
        pred: &Node,
        input: Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let is_ts = input.flags().has(Flags::TUPLE_STREAM);
        let items = match &input {
            Value::Array(a, _) => a.clone(),
            Value::Undefined => Rc::new(crate::value::Arr(vec![])),
            other => Rc::new(crate::value::Arr(vec![other.clone()])),
        };
        let mut flags = Flags::SEQUENCE;
        if is_ts {
            flags = flags.with(Flags::TUPLE_STREAM);
        }
        if let Kind::Num(n) = pred.kind {
            let len = items.len() as f64;
            let mut idx = n.floor();
            if idx < 0.0 {
                idx += len;
            }
            let mut out = Vec::new();
            if idx >= 0.0 && idx < len {
                let item = &items[idx as usize];
                if let Value::Array(a, f) = item {
                    return Ok(Value::Array(a.clone(), *f));
                }
                out.push(item.clone());
            }
            return Ok(Value::array_with(out, flags));
        }
        let mut out = Vec::new();
        let len = items.len() as f64;
        for (index, item) in items.iter().enumerate() {
            let (context, fenv) = if is_ts {
                (tuple_focus(item), self.frame_from_tuple(env, item))
            } else {
                (item.clone(), env.clone())
            };
            let res = self.eval(pred, &context, &fenv)?;
            let nums: Option<Vec<f64>> = match &res {
                Value::Number(n) => Some(vec![*n]),
                Value::Array(a, _)
                    if !a.is_empty() && a.iter().all(|x| matches!(x, Value::Number(_))) =>
                {
                    Some(a.iter().filter_map(|x| x.as_number()).collect())
                }
                _ => None,
            };
            if let Some(nums) = nums {
                for n in nums {
                    let mut ii = n.floor();
                    if ii < 0.0 {
                        ii += len;
                    }
                    if ii == index as f64 {
                        out.push(item.clone());
                    }
                }
            } else if boolean(&res) == Some(true) {
                out.push(item.clone());
            }
        }
        Ok(Value::array_with(out, flags))
    }

    fn eval_group(
        &mut self,
        pairs: &[(Node, Node)],
        pos: usize,
        input: Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let reduce = input.flags().has(Flags::TUPLE_STREAM);
        if !matches!(input, Value::Array(..)) {
            return self.eval_group_single(pairs, pos, &input, env);
        }
        let mut items = match &input {
            Value::Array(a, _) => a.to_vec(),
            other => vec![other.clone()],
        };
        if items.is_empty() {
            items.push(Value::Undefined);
        }
        // key -> (data, pair index)
        let mut groups: indexmap::IndexMap<String, (Value, usize)> = indexmap::IndexMap::default();
        for item in &items {
            let (ctx, kenv) = if reduce {
                (tuple_focus(item), self.frame_from_tuple(env, item))
            } else {
                (item.clone(), env.clone())
            };
            for (pi, (k, _)) in pairs.iter().enumerate() {
                let key = self.eval(k, &ctx, &kenv)?;
                let key = match key {
                    Value::Undefined => continue,
                    Value::String(s) => s.to_string(),
                    other => {
                        return Err(Error::value("T1003", Some(pos), functions::display(&other)));
                    }
                };
                match groups.get_mut(&key) {
                    Some(entry) => {
                        if entry.1 != pi {
                            return Err(Error::value(
                                "D1009",
                                Some(pos),
                                crate::error::quote(&key),
                            ));
                        }
                        let old = std::mem::take(&mut entry.0);
                        entry.0 = append(old, item.clone());
                    }
                    None => {
                        groups.insert(key, (item.clone(), pi));
                    }
                }
            }
        }
        let mut result = Map::default();
        let groups = js_key_order(groups);
        for (key, (data, pi)) in groups {
            let (ctx, venv) = if reduce {
                let mut t = reduce_tuple_stream(&data);
                let focus = t.shift_remove("@").unwrap_or_default();
                let tv = Value::object(t);
                (focus, self.frame_from_tuple(env, &tv))
            } else {
                (data, env.clone())
            };
            let v = self.eval(&pairs[pi].1, &ctx, &venv)?;
            if !v.is_undefined() {
                result.insert(key, v);
            }
        }
        Ok(Value::object(result))
    }

    /// Grouping over a single (non-array) input: every key is evaluated first, then the
    /// value of each distinct key, as in the general algorithm.
    fn eval_group_single(
        &mut self,
        pairs: &[(Node, Node)],
        pos: usize,
        item: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let mut keys: Vec<(String, usize)> = Vec::with_capacity(pairs.len());
        for (pi, (k, _)) in pairs.iter().enumerate() {
            let key = match self.eval(k, item, env)? {
                Value::Undefined => continue,
                Value::String(s) => s.to_string(),
                other => return Err(Error::value("T1003", Some(pos), functions::display(&other))),
            };
            if let Some((_, prev)) = keys.iter().find(|(existing, _)| *existing == key) {
                if *prev != pi {
                    return Err(Error::value("D1009", Some(pos), crate::error::quote(&key)));
                }
                continue;
            }
            keys.push((key, pi));
        }
        let mut result = Map::with_capacity_and_hasher(keys.len(), Default::default());
        for (key, pi) in keys {
            let v = self.eval(&pairs[pi].1, item, env)?;
            if !v.is_undefined() {
                result.insert(key, v);
            }
        }
        Ok(Value::object(js_key_order(result)))
    }

    pub fn eval_sort(
        &mut self,
        terms: &[SortTerm],
        pos: usize,
        input: Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let is_ts = input.flags().has(Flags::TUPLE_STREAM);
        let items = match &input {
            Value::Array(a, _) => a.to_vec(),
            Value::Undefined => return Ok(Value::Undefined),
            other => vec![other.clone()],
        };
        if items.len() <= 1 {
            return Ok(input);
        }
        let mut keys: Vec<Vec<Value>> = Vec::with_capacity(items.len());
        for item in &items {
            let (ctx, kenv) = if is_ts {
                (tuple_focus(item), self.frame_from_tuple(env, item))
            } else {
                (item.clone(), env.clone())
            };
            let mut k = Vec::with_capacity(terms.len());
            for t in terms {
                k.push(self.eval(&t.expr, &ctx, &kenv)?);
            }
            keys.push(k);
        }
        let mut err: Option<Error> = None;
        let mut idx: Vec<usize> = (0..items.len()).collect();
        let mut cmp = |a: &usize, b: &usize| -> std::cmp::Ordering {
            use std::cmp::Ordering::*;
            if err.is_some() {
                return Equal;
            }
            for (ti, t) in terms.iter().enumerate() {
                let aa = &keys[*a][ti];
                let bb = &keys[*b][ti];
                let c = match (aa, bb) {
                    (Value::Undefined, Value::Undefined) => Equal,
                    (Value::Undefined, _) => return Greater,
                    (_, Value::Undefined) => return Less,
                    (Value::Number(x), Value::Number(y)) => x.partial_cmp(y).unwrap_or(Equal),
                    (Value::String(x), Value::String(y)) => functions::cmp_utf16(x, y),
                    (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
                        err = Some(Error::with(
                            "T2007",
                            Some(pos),
                            Inserts {
                                value: Some(functions::display(aa)),
                                value2: Some(functions::display(bb)),
                                ..Default::default()
                            },
                        ));
                        return Equal;
                    }
                    _ => {
                        let bad = if matches!(aa, Value::Number(_) | Value::String(_)) {
                            bb
                        } else {
                            aa
                        };
                        err = Some(Error::value("T2008", Some(pos), functions::display(bad)));
                        return Equal;
                    }
                };
                let c = if t.descending { c.reverse() } else { c };
                if c != Equal {
                    return c;
                }
            }
            Equal
        };
        idx.sort_by(&mut cmp);
        if let Some(e) = err {
            return Err(e);
        }
        let out: Vec<Value> = idx.into_iter().map(|i| items[i].clone()).collect();
        let flags = if is_ts {
            Flags::SEQUENCE.with(Flags::TUPLE_STREAM)
        } else {
            Flags::NONE
        };
        Ok(Value::array_with(out, flags))
    }

    fn eval_binary(
        &mut self,
        op: BinOp,
        l: &Node,
        r: &Node,
        pos: usize,
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        match op {
            BinOp::And => {
                let lv = self.eval(l, input, env)?;
                if boolean(&lv) != Some(true) {
                    return Ok(Value::Bool(false));
                }
                let rv = self.eval(r, input, env)?;
                return Ok(Value::Bool(boolean(&rv) == Some(true)));
            }
            BinOp::Or => {
                let lv = self.eval(l, input, env)?;
                if boolean(&lv) == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let rv = self.eval(r, input, env)?;
                return Ok(Value::Bool(boolean(&rv) == Some(true)));
            }
            _ => {}
        }
        let lv = self.eval(l, input, env)?;
        let rv = self.eval(r, input, env)?;
        let r = binary_values(op, lv, rv, pos)?;
        self.charge_for(&r, pos)?;
        Ok(r)
    }
}

/// Apply a (non short-circuit) binary operator to evaluated operands.
#[inline(never)]
fn binary_values(op: BinOp, lv: Value, rv: Value, pos: usize) -> Result<Value, Error> {
    {
        let sym = op.symbol();
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let ln = match &lv {
                    Value::Undefined => None,
                    Value::Number(n) => Some(*n),
                    other => {
                        return Err(Error::with(
                            "T2001",
                            Some(pos),
                            Inserts {
                                token: Some(sym),
                                value: Some(functions::display(other)),
                                ..Default::default()
                            },
                        ))
                    }
                };
                let rn = match &rv {
                    Value::Undefined => None,
                    Value::Number(n) => Some(*n),
                    other => {
                        return Err(Error::with(
                            "T2002",
                            Some(pos),
                            Inserts {
                                token: Some(sym),
                                value: Some(functions::display(other)),
                                ..Default::default()
                            },
                        ))
                    }
                };
                check_finite(ln, pos)?;
                check_finite(rn, pos)?;
                let (a, b) = match (ln, rn) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Ok(Value::Undefined),
                };
                Ok(Value::Number(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    _ => a % b,
                }))
            }
            BinOp::Eq | BinOp::Ne => {
                if lv.is_undefined() || rv.is_undefined() {
                    return Ok(Value::Bool(false));
                }
                let eq = deep_equal(&lv, &rv);
                Ok(Value::Bool(if op == BinOp::Eq { eq } else { !eq }))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let comparable =
                    |v: &Value| matches!(v, Value::Undefined | Value::String(_) | Value::Number(_));
                if !comparable(&lv) || !comparable(&rv) {
                    let bad = if !comparable(&lv) { &lv } else { &rv };
                    return Err(Error::with(
                        "T2010",
                        Some(pos),
                        Inserts {
                            token: Some(sym),
                            value: Some(functions::display(bad)),
                            ..Default::default()
                        },
                    ));
                }
                let ord = match (&lv, &rv) {
                    (Value::Undefined, _) | (_, Value::Undefined) => return Ok(Value::Undefined),
                    (Value::Number(a), Value::Number(b)) => a.partial_cmp(b),
                    (Value::String(a), Value::String(b)) => Some(functions::cmp_utf16(a, b)),
                    _ => {
                        return Err(Error::with(
                            "T2009",
                            Some(pos),
                            Inserts {
                                token: Some(sym),
                                value: Some(functions::display(&lv)),
                                value2: Some(functions::display(&rv)),
                                ..Default::default()
                            },
                        ))
                    }
                };
                use std::cmp::Ordering::*;
                let b = match ord {
                    None => false,
                    Some(o) => match op {
                        BinOp::Lt => o == Less,
                        BinOp::Le => o != Greater,
                        BinOp::Gt => o == Greater,
                        _ => o != Less,
                    },
                };
                Ok(Value::Bool(b))
            }
            BinOp::Concat => {
                let ls = if lv.is_undefined() {
                    String::new()
                } else {
                    functions::string(&lv).map_err(|e| err_pos(e, pos))?
                };
                let rs = if rv.is_undefined() {
                    String::new()
                } else {
                    functions::string(&rv).map_err(|e| err_pos(e, pos))?
                };
                Ok(Value::string(ls + &rs))
            }
            BinOp::Range => {
                let is_int =
                    |v: &Value| matches!(v, Value::Number(n) if n.fract() == 0.0 && n.is_finite());
                if !lv.is_undefined() && !is_int(&lv) {
                    return Err(Error::with(
                        "T2003",
                        Some(pos),
                        Inserts {
                            token: Some(".."),
                            value: Some(functions::display(&lv)),
                            ..Default::default()
                        },
                    ));
                }
                if !rv.is_undefined() && !is_int(&rv) {
                    return Err(Error::with(
                        "T2004",
                        Some(pos),
                        Inserts {
                            token: Some(".."),
                            value: Some(functions::display(&rv)),
                            ..Default::default()
                        },
                    ));
                }
                let (a, b) = match (lv.as_number(), rv.as_number()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Ok(Value::Undefined),
                };
                if a > b {
                    return Ok(Value::Undefined);
                }
                let size = b - a + 1.0;
                if size > 1e7 {
                    return Err(Error::value(
                        "D2014",
                        Some(pos),
                        crate::value::js_number_string(size),
                    ));
                }
                let out: Vec<Value> = (0..size as i64)
                    .map(|i| Value::Number(a + i as f64))
                    .collect();
                Ok(Value::seq(out))
            }
            BinOp::In => {
                if lv.is_undefined() || rv.is_undefined() {
                    return Ok(Value::Bool(false));
                }
                let found = rv.members().iter().any(|x| strict_equal(x, &lv));
                Ok(Value::Bool(found))
            }
            BinOp::And | BinOp::Or => Ok(Value::Undefined),
        }
    }
}

impl<'e> Evaluator<'e> {
    #[allow(clippy::too_many_arguments)]
    fn eval_call(
        &mut self,
        node: &Node,
        procn: &Node,
        argn: &[Node],
        tail: bool,
        apply_to: Option<Value>,
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let func = self.eval(procn, input, env)?;
        let pname = proc_name(procn);
        if func.is_undefined() {
            if let (Kind::Path(steps), Some(name)) = (&procn.kind, &pname) {
                if matches!(steps.first().map(|s| &s.kind), Some(Kind::Name(_)))
                    && !self.lookup_var(env, name).is_undefined()
                {
                    return Err(Error::token("T1005", Some(node.pos), name));
                }
            }
        }
        let mut args = Vec::with_capacity(argn.len() + 1);
        if let Some(a) = apply_to {
            args.push(a);
        }
        for a in argn {
            args.push(self.eval(a, input, env)?);
        }
        if tail && matches!(func, Value::Lambda(_)) {
            return Ok(Value::TailCall(Rc::new(TailCall {
                func,
                args,
                pos: node.pos,
            })));
        }
        let name = pname.unwrap_or_default();
        self.call_env = Some(env.clone());
        self.apply(&func, args, input, &name, node.pos)
    }

    fn eval_partial(
        &mut self,
        procn: &Node,
        argn: &[Node],
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let mut args = Vec::with_capacity(argn.len());
        for a in argn {
            if matches!(a.kind, Kind::Placeholder) {
                args.push(None);
            } else {
                args.push(Some(self.eval(a, input, env)?));
            }
        }
        let func = self.eval(procn, input, env)?;
        let pname = proc_name(procn).unwrap_or_default();
        if !func.is_function() {
            if func.is_undefined() {
                if let Kind::Path(steps) = &procn.kind {
                    if matches!(steps.first().map(|s| &s.kind), Some(Kind::Name(_)))
                        && !self.lookup_var(env, &pname).is_undefined()
                    {
                        return Err(Error::token("T1007", Some(procn.pos), &pname));
                    }
                }
            }
            return Err(Error::token("T1008", Some(procn.pos), &pname));
        }
        Ok(Value::Partial(Rc::new(Partial { func, args })))
    }

    fn eval_apply(
        &mut self,
        l: &Node,
        r: &Node,
        pos: usize,
        input: &Value,
        env: &Rc<Frame>,
    ) -> Result<Value, Error> {
        let lv = self.eval(l, input, env)?;
        if let Kind::Call { proc, args, .. } = &r.kind {
            return self.eval_call(r, proc, args, false, Some(lv), input, env);
        }
        let func = self.eval(r, input, env)?;
        if !func.is_function() {
            return Err(Error::value("T2006", Some(pos), functions::display(&func)));
        }
        if lv.is_function() {
            // function composition
            return Ok(Value::Partial(Rc::new(Partial {
                func: Value::Builtin(Builtin::Compose),
                args: vec![Some(lv), Some(func), None],
            })));
        }
        self.call_env = Some(env.clone());
        self.apply(&func, vec![lv], input, "", pos)
    }

    /// Apply a function value to arguments (trampolining tail calls).
    pub fn apply(
        &mut self,
        func: &Value,
        args: Vec<Value>,
        input: &Value,
        name: &str,
        pos: usize,
    ) -> Result<Value, Error> {
        let mut result = self.apply_inner(func, args, input, name, pos)?;
        while let Value::TailCall(tc) = result {
            self.steps += 1;
            if self.steps > self.env.max_steps {
                return Err(Error::value(
                    "D1012",
                    Some(tc.pos),
                    self.env.max_steps.to_string(),
                ));
            }
            result = self.apply_inner(&tc.func, tc.args.clone(), input, name, tc.pos)?;
        }
        Ok(result)
    }

    fn apply_inner(
        &mut self,
        func: &Value,
        args: Vec<Value>,
        input: &Value,
        name: &str,
        pos: usize,
    ) -> Result<Value, Error> {
        // A lambda's body is counted by `eval`, as in the reference; other functions
        // (built-ins calling back, partial applications, compositions) count here.
        let counted = !matches!(func, Value::Lambda(_));
        if counted {
            self.depth += 1;
            if self.depth > self.env.max_depth {
                self.depth -= 1;
                return Err(Error::code("D1011", Some(pos)));
            }
        }
        let r = self.apply_dispatch(func, args, input, name, pos);
        if counted {
            self.depth -= 1;
        }
        r.map_err(|e| err_pos(e, pos))
    }

    fn apply_dispatch(
        &mut self,
        func: &Value,
        args: Vec<Value>,
        input: &Value,
        name: &str,
        pos: usize,
    ) -> Result<Value, Error> {
        match func {
            Value::Lambda(l) => {
                let args = match &l.def.signature {
                    Some(sig) => sig.validate(&args, input, name)?,
                    None => args,
                };
                self.apply_lambda(l, args)
            }
            Value::Builtin(b) => self.call_builtin(*b, args, input, pos),
            Value::Native(n) => {
                let args = match &n.signature {
                    Some(sig) => sig.validate(&args, input, &n.name)?,
                    None => args,
                };
                call_native(n, &args)
            }
            Value::Partial(p) => {
                let mut supplied = args.into_iter();
                let full: Vec<Value> = p
                    .args
                    .iter()
                    .map(|a| match a {
                        Some(v) => v.clone(),
                        None => supplied.next().unwrap_or_default(),
                    })
                    .collect();
                if let Value::Lambda(l) = &p.func {
                    // partially applied lambdas are not signature-checked (as in JSONata)
                    return self.apply_lambda(l, full);
                }
                self.apply(&p.func, full, input, name, pos)
            }
            Value::Transform(t) => {
                let t = t.clone();
                self.apply_transform(&t, args)
            }
            Value::Regex(re) => {
                let s = args.first().cloned().unwrap_or_default();
                match s {
                    Value::String(s) => Ok(functions::regex_first_match(&re.regex, &s)),
                    _ => Ok(Value::Undefined),
                }
            }
            _ => Err(Error::token("T1006", Some(pos), name)),
        }
    }

    #[inline(never)]
    fn call_builtin(
        &mut self,
        b: Builtin,
        args: Vec<Value>,
        input: &Value,
        pos: usize,
    ) -> Result<Value, Error> {
        let args = match b.signature() {
            Some(sig) => sig.validate(&args, input, b.name())?,
            None => args,
        };
        let env = self.call_env.clone().unwrap_or_else(Frame::root);
        let r = functions::call(self, b, args, input, &env, pos)?;
        self.charge_for(&r, pos)?;
        Ok(r)
    }

    pub fn apply_lambda(&mut self, l: &Rc<Lambda>, args: Vec<Value>) -> Result<Value, Error> {
        let frame = Frame::child(&l.env);
        let def: &LambdaDef = &l.def;
        for (i, p) in def.params.iter().enumerate() {
            let v = args.get(i).cloned().unwrap_or_default();
            self.bind(&frame, p, v);
        }
        self.eval(&def.body, &l.input, &frame)
    }

    /// Apply a transform function: clone the input, then update and delete in the
    /// objects the pattern selects.
    fn apply_transform(
        &mut self,
        t: &crate::value::TransformValue,
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        let obj = args.into_iter().next().unwrap_or_default();
        match &obj {
            Value::Undefined => return Ok(Value::Undefined),
            Value::Object(_) | Value::Array(..) => {}
            _ => {
                return Err(Error::with(
                    "T0410",
                    None,
                    Inserts {
                        token: Some("transform"),
                        index: Some(1),
                        ..Default::default()
                    },
                ))
            }
        }
        let clone_fn = self.lookup_var(&t.env, "clone");
        if !clone_fn.is_function() {
            return Err(Error::code("T2013", Some(t.def.pos)));
        }
        let result = self.apply(&clone_fn, vec![obj], &Value::Undefined, "clone", t.def.pos)?;
        let matches = self.eval(&t.def.pattern, &result, &t.env)?;
        let mut mods: Mods = HashMap::default();
        for m in matches.members() {
            let update = self.eval(&t.def.update, &m, &t.env)?;
            let upd = match update {
                Value::Undefined => None,
                Value::Object(o) => Some((*o).clone()),
                other => {
                    return Err(Error::value(
                        "T2011",
                        Some(t.def.update.pos),
                        functions::display(&other),
                    ))
                }
            };
            let mut dels = Vec::new();
            if let Some(d) = &t.def.delete {
                let dv = self.eval(d, &m, &t.env)?;
                if !dv.is_undefined() {
                    let items = dv.members();
                    if !items.iter().all(|x| matches!(x, Value::String(_))) {
                        return Err(Error::value("T2012", Some(d.pos), functions::display(&dv)));
                    }
                    dels = items
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect();
                }
            }
            if let Value::Object(o) = &m {
                mods.entry(Rc::as_ptr(o) as usize)
                    .or_default()
                    .push((upd, dels));
            }
        }
        Ok(rebuild(&result, &mods))
    }
}

#[inline(never)]
fn call_native(n: &crate::value::NativeValue, args: &[Value]) -> Result<Value, Error> {
    let mut jargs = Vec::with_capacity(args.len());
    for a in args {
        crate::value::check_nesting(a)?;
        jargs.push(crate::value::to_json(a).unwrap_or(serde_json::Value::Null));
    }
    let out = (n.f)(&jargs).map_err(|mut e| {
        if e.token.is_none() {
            e.token = Some(n.name.to_string());
        }
        e
    })?;
    Ok(crate::value::from_json(&out))
}

/// Transform modifications by object identity: (update, deletions) in match order.
type Mods = HashMap<usize, Vec<(Option<Map>, Vec<String>)>>;

/// Order keys the way a JavaScript object does: array-index keys first, ascending.
pub(crate) fn js_key_order<V, S: std::hash::BuildHasher + Default>(
    m: indexmap::IndexMap<String, V, S>,
) -> indexmap::IndexMap<String, V, S> {
    let is_index = |k: &str| {
        !k.is_empty()
            && k.len() <= 10
            && k.bytes().all(|b| b.is_ascii_digit())
            && (k == "0" || !k.starts_with('0'))
            && k.parse::<u64>().map(|n| n < 4_294_967_295).unwrap_or(false)
    };
    if !m.keys().any(|k| is_index(k)) {
        return m;
    }
    type Entries<V> = Vec<(String, V)>;
    let (mut idx, rest): (Entries<V>, Entries<V>) = m.into_iter().partition(|(k, _)| is_index(k));
    idx.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(0));
    idx.into_iter().chain(rest).collect()
}

fn strict_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x, _), Value::Array(y, _)) => Rc::ptr_eq(x, y),
        (Value::Object(x), Value::Object(y)) => Rc::ptr_eq(x, y),
        _ => deep_equal(a, b),
    }
}

fn check_finite(n: Option<f64>, pos: usize) -> Result<(), Error> {
    if let Some(n) = n {
        if !n.is_finite() {
            return Err(Error::value("D1001", Some(pos), "null"));
        }
    }
    Ok(())
}

fn proc_name(n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Path(steps) => match steps.first().map(|s| &s.kind) {
            Some(Kind::Name(s)) => Some(s.clone()),
            _ => None,
        },
        Kind::Variable(v) => Some(v.clone()),
        _ => None,
    }
}

/// `**`: every value below (and including) `v` in document order; arrays themselves are
/// not included, objects are (iterative pre-order walk).
fn recurse_descendants(v: &Value, out: &mut Vec<Value>) {
    let mut stack: Vec<&Value> = vec![v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Array(a, _) => stack.extend(a.iter().rev()),
            Value::Object(m) => {
                out.push(x.clone());
                stack.extend(m.values().rev());
            }
            other => out.push(other.clone()),
        }
    }
}

fn reduce_tuple_stream(data: &Value) -> Map {
    match data {
        Value::Array(a, _) => {
            let mut result = match a.first() {
                Some(Value::Object(m)) => (**m).clone(),
                _ => Map::default(),
            };
            for t in a.iter().skip(1) {
                if let Value::Object(m) = t {
                    for (k, v) in m.iter() {
                        let entry = result.entry(k.clone()).or_default();
                        let old = std::mem::take(entry);
                        *entry = append(old, v.clone());
                    }
                }
            }
            result
        }
        Value::Object(m) => (**m).clone(),
        _ => Map::default(),
    }
}

fn rebuild(v: &Value, mods: &Mods) -> Value {
    match v {
        Value::Object(o) => {
            let mut m = Map::with_capacity_and_hasher(o.len(), Default::default());
            for (k, x) in o.iter() {
                m.insert(k.clone(), rebuild(x, mods));
            }
            if let Some(list) = mods.get(&(Rc::as_ptr(o) as usize)) {
                for (upd, dels) in list {
                    if let Some(u) = upd {
                        for (k, x) in u.iter() {
                            m.insert(k.clone(), x.clone());
                        }
                    }
                    for d in dels {
                        m.shift_remove(d);
                    }
                }
            }
            Value::object(m)
        }
        Value::Array(a, f) => Value::array_with(a.iter().map(|x| rebuild(x, mods)).collect(), *f),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: f64) -> Value {
        Value::Number(x)
    }

    #[test]
    fn truthiness_follows_jsonata() {
        assert_eq!(boolean(&Value::Undefined), None);
        assert_eq!(boolean(&n(0.0)), Some(false));
        assert_eq!(boolean(&Value::str("")), Some(false));
        assert_eq!(boolean(&Value::array(vec![])), Some(false));
        assert_eq!(boolean(&Value::array(vec![n(0.0)])), Some(false));
        assert_eq!(boolean(&Value::array(vec![n(0.0), n(1.0)])), Some(true));
        assert_eq!(
            boolean(&Value::array(vec![Value::array(vec![
                n(0.0),
                Value::str("x")
            ])])),
            Some(true)
        );
        assert_eq!(boolean(&Value::object(Map::default())), Some(false));
    }

    #[test]
    fn append_concatenates_and_skips_undefined() {
        let a = append(n(1.0), Value::array(vec![n(2.0), n(3.0)]));
        assert_eq!(a.members().len(), 3);
        assert!(matches!(append(Value::Undefined, n(1.0)), Value::Number(x) if x == 1.0));
        assert!(matches!(append(n(1.0), Value::Undefined), Value::Number(x) if x == 1.0));
    }

    #[test]
    fn javascript_key_order_puts_array_indexes_first() {
        let mut m: indexmap::IndexMap<String, i32> = indexmap::IndexMap::new();
        for (k, v) in [("b", 1), ("10", 2), ("a", 3), ("2", 4), ("01", 5)] {
            m.insert(k.to_string(), v);
        }
        let keys: Vec<String> = js_key_order(m).into_keys().collect();
        assert_eq!(keys, vec!["2", "10", "b", "a", "01"]);
    }

    #[test]
    fn descendants_and_flattening_keep_document_order() {
        let mut inner = Map::default();
        inner.insert("c".into(), n(2.0));
        let mut outer = Map::default();
        outer.insert("a".into(), n(1.0));
        outer.insert("b".into(), Value::object(inner));
        let mut out = Vec::new();
        recurse_descendants(&Value::object(outer), &mut out);
        let kinds: Vec<&str> = out.iter().filter_map(|v| v.type_name()).collect();
        assert_eq!(kinds, vec!["object", "number", "object", "number"]);
        let nested = Value::array(vec![
            n(1.0),
            Value::array(vec![n(2.0), Value::array(vec![n(3.0)])]),
        ]);
        let mut flat = Vec::new();
        flatten_into(&nested, &mut flat);
        let nums: Vec<f64> = flat.iter().filter_map(|v| v.as_number()).collect();
        assert_eq!(nums, vec![1.0, 2.0, 3.0]);
    }
}

//! Pratt parser producing a raw tree, then the processing pass that turns it into the
//! evaluator's tree (paths, stages, tuple annotations, parent slots, tail calls).

use std::sync::Arc;

use crate::ast::{BinOp, Kind, LambdaDef, Node, SortTerm, Stage, TransformDef};
use crate::error::{Error, Inserts};
use crate::lexer::{Lexer, Tok, Token};
use crate::signature::Signature;

/// Maximum nesting depth of the parser (guards the native stack).
const MAX_DEPTH: usize = 100;

#[derive(Debug)]
enum R {
    Name(String),
    Var(String),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Regex(String, String),
    Wildcard,
    Descendant,
    Parent,
    Placeholder,
    End,
    OpName(&'static str),
    Neg(Box<RNode>),
    Array(Vec<RNode>),
    Object(Vec<(RNode, RNode)>),
    Block(Vec<RNode>),
    Binary(&'static str, Box<RNode>, Box<RNode>),
    Dot(Box<RNode>, Box<RNode>),
    Pred(Box<RNode>, Box<RNode>),
    Group(Box<RNode>, Vec<(RNode, RNode)>),
    Sort(Box<RNode>, Vec<(bool, RNode)>),
    Focus(Box<RNode>, String),
    Index(Box<RNode>, String),
    Bind(Box<RNode>, Box<RNode>),
    Apply(Box<RNode>, Box<RNode>),
    Call(Box<RNode>, Vec<RNode>, bool),
    Lambda(Vec<String>, Option<Signature>, Box<RNode>),
    Cond(Box<RNode>, Box<RNode>, Option<Box<RNode>>),
    Coalesce(Box<RNode>, Box<RNode>),
    Elvis(Box<RNode>, Box<RNode>),
    Transform(Box<RNode>, Box<RNode>, Option<Box<RNode>>),
}

#[derive(Debug)]
struct RNode {
    r: R,
    pos: usize,
    keep_array: bool,
}

fn rn(r: R, pos: usize) -> RNode {
    RNode {
        r,
        pos,
        keep_array: false,
    }
}

fn lbp(tok: &Tok) -> u32 {
    match tok {
        Tok::Op(op) => match *op {
            "." => 75,
            "[" | "(" | "@" | "#" => 80,
            "{" => 70,
            "?" => 20,
            "+" | "-" | "&" => 50,
            "*" | "/" | "%" => 60,
            "=" | "<" | ">" | "^" | "!=" | "<=" | ">=" | "~>" | "?:" | "??" | "in" => 40,
            ":=" => 10,
            "and" => 30,
            "or" => 25,
            _ => 0,
        },
        _ => 0,
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Name(s) => s.clone(),
        Tok::Variable(s) => s.clone(),
        Tok::Number(n) => crate::value::js_number_string(*n),
        Tok::Str(s) => s.clone(),
        Tok::Bool(b) => b.to_string(),
        Tok::Null => "null".into(),
        Tok::Regex(p, _) => p.clone(),
        Tok::Op(o) => o.to_string(),
        Tok::End => "(end)".into(),
    }
}

struct Parser {
    lexer: Lexer,
    tok: Token,
    depth: usize,
    /// Accept `??` and `?:` (JSONata 2.1 and later).
    coalescing: bool,
}

impl Parser {
    /// Advance to the next token; the token after an operand is lexed in infix mode.
    fn advance(&mut self, expect: Option<&str>) -> Result<(), Error> {
        if let Some(id) = expect {
            let ok = matches!(&self.tok.tok, Tok::Op(o) if *o == id);
            if !ok {
                let code = if self.tok.tok == Tok::End {
                    "S0203"
                } else {
                    "S0202"
                };
                let tt = tok_text(&self.tok.tok);
                let raw = matches!(self.tok.tok, Tok::Number(_) | Tok::Bool(_) | Tok::Null);
                return Err(Error::with(
                    code,
                    Some(self.tok.pos),
                    Inserts {
                        token: Some(&tt),
                        raw_token: raw,
                        value: Some(crate::error::quote(id)),
                        ..Default::default()
                    },
                ));
            }
        }
        // After an operand-like token, `/` is division; otherwise it starts a regex.
        let prefix = !matches!(
            &self.tok.tok,
            Tok::Name(_)
                | Tok::Variable(_)
                | Tok::Number(_)
                | Tok::Str(_)
                | Tok::Bool(_)
                | Tok::Null
                | Tok::Regex(..)
                | Tok::Op(")")
                | Tok::Op("]")
                | Tok::Op("}")
        );
        self.tok = self.lexer.next(prefix)?;
        if let Tok::Op(op @ ("!" | "~")) = self.tok.tok {
            // lexed as stop characters, but they are not operators
            return Err(Error::token("S0204", Some(self.tok.pos), op));
        }
        Ok(())
    }

    fn is_op(&self, id: &str) -> bool {
        matches!(&self.tok.tok, Tok::Op(o) if *o == id)
    }

    fn expression(&mut self, rbp: u32) -> Result<RNode, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::code("D1011", Some(self.tok.pos)));
        }
        let t = self.tok.clone();
        self.advance(None)?;
        let mut left = self.nud(t)?;
        while rbp < lbp(&self.tok.tok) {
            let t = self.tok.clone();
            self.advance(None)?;
            left = self.led(t, left)?;
        }
        self.depth -= 1;
        Ok(left)
    }

    fn nud(&mut self, t: Token) -> Result<RNode, Error> {
        let pos = t.pos;
        Ok(match t.tok {
            Tok::Name(s) => rn(R::Name(s), pos),
            Tok::Variable(s) => rn(R::Var(s), pos),
            Tok::Number(n) => rn(R::Num(n), pos),
            Tok::Str(s) => rn(R::Str(s), pos),
            Tok::Bool(b) => rn(R::Bool(b), pos),
            Tok::Null => rn(R::Null, pos),
            Tok::Regex(p, f) => rn(R::Regex(p, f), pos),
            Tok::End => rn(R::End, pos),
            Tok::Op(op) => match op {
                "and" | "or" | "in" => rn(R::OpName(op), pos),
                "-" => {
                    let e = self.expression(70)?;
                    rn(R::Neg(Box::new(e)), pos)
                }
                "*" => rn(R::Wildcard, pos),
                "**" => rn(R::Descendant, pos),
                "%" => rn(R::Parent, pos),
                "(" => {
                    let mut items = Vec::new();
                    while !self.is_op(")") {
                        items.push(self.expression(0)?);
                        if !self.is_op(";") {
                            break;
                        }
                        self.advance(Some(";"))?;
                    }
                    self.advance(Some(")"))?;
                    rn(R::Block(items), pos)
                }
                "[" => {
                    let mut items = Vec::new();
                    if !self.is_op("]") {
                        loop {
                            let mut item = self.expression(0)?;
                            if self.is_op("..") {
                                let p = self.tok.pos;
                                self.advance(Some(".."))?;
                                let rhs = self.expression(0)?;
                                item = rn(R::Binary("..", Box::new(item), Box::new(rhs)), p);
                            }
                            items.push(item);
                            if !self.is_op(",") {
                                break;
                            }
                            self.advance(Some(","))?;
                        }
                    }
                    self.advance(Some("]"))?;
                    rn(R::Array(items), pos)
                }
                "{" => {
                    let pairs = self.object_pairs()?;
                    rn(R::Object(pairs), pos)
                }
                "|" => {
                    let pattern = self.expression(0)?;
                    self.advance(Some("|"))?;
                    let update = self.expression(0)?;
                    let mut delete = None;
                    if self.is_op(",") {
                        self.advance(Some(","))?;
                        delete = Some(Box::new(self.expression(0)?));
                    }
                    self.advance(Some("|"))?;
                    rn(
                        R::Transform(Box::new(pattern), Box::new(update), delete),
                        pos,
                    )
                }
                other => return Err(Error::token("S0211", Some(pos), other)),
            },
        })
    }

    fn object_pairs(&mut self) -> Result<Vec<(RNode, RNode)>, Error> {
        let mut pairs = Vec::new();
        if !self.is_op("}") {
            loop {
                let k = self.expression(0)?;
                self.advance(Some(":"))?;
                let v = self.expression(0)?;
                pairs.push((k, v));
                if !self.is_op(",") {
                    break;
                }
                self.advance(Some(","))?;
            }
        }
        self.advance(Some("}"))?;
        Ok(pairs)
    }

    fn led(&mut self, t: Token, left: RNode) -> Result<RNode, Error> {
        let pos = t.pos;
        let op = match t.tok {
            Tok::Op(op) => op,
            other => return Err(Error::token("S0201", Some(pos), &tok_text(&other))),
        };
        let bin = |p: &mut Parser, op: &'static str, left: RNode| -> Result<RNode, Error> {
            let rhs = p.expression(lbp(&Tok::Op(op)))?;
            Ok(rn(R::Binary(op, Box::new(left), Box::new(rhs)), pos))
        };
        Ok(match op {
            "+" | "-" | "*" | "/" | "%" | "=" | "!=" | "<" | "<=" | ">" | ">=" | "&" | "and"
            | "or" | "in" => bin(self, op, left)?,
            "." => {
                let rhs = self.expression(75)?;
                rn(R::Dot(Box::new(left), Box::new(rhs)), pos)
            }
            "~>" => {
                let rhs = self.expression(40)?;
                rn(R::Apply(Box::new(left), Box::new(rhs)), pos)
            }
            "??" | "?:" if !self.coalescing => {
                // JSONata 2.0 reads these as `?` followed by an operand it cannot start with
                let token = if op == "??" { "?" } else { ":" };
                return Err(Error::token("S0211", Some(pos), token));
            }
            "??" => {
                let rhs = self.expression(40)?;
                rn(R::Coalesce(Box::new(left), Box::new(rhs)), pos)
            }
            "?:" => {
                let rhs = self.expression(40)?;
                rn(R::Elvis(Box::new(left), Box::new(rhs)), pos)
            }
            ":=" => {
                if !matches!(left.r, R::Var(_)) {
                    return Err(Error::token("S0212", Some(left.pos), ":="));
                }
                let rhs = self.expression(9)?;
                rn(R::Bind(Box::new(left), Box::new(rhs)), pos)
            }
            "@" | "#" => {
                let rhs = self.expression(80)?;
                let name = match rhs.r {
                    R::Var(v) => v,
                    _ => return Err(Error::token("S0214", Some(rhs.pos), op)),
                };
                if op == "@" {
                    rn(R::Focus(Box::new(left), name), pos)
                } else {
                    rn(R::Index(Box::new(left), name), pos)
                }
            }
            "?" => {
                let then = self.expression(0)?;
                let mut els = None;
                if self.is_op(":") {
                    self.advance(Some(":"))?;
                    els = Some(Box::new(self.expression(0)?));
                }
                rn(R::Cond(Box::new(left), Box::new(then), els), pos)
            }
            "[" => {
                if self.is_op("]") {
                    // `[]`: keep singleton arrays
                    self.advance(Some("]"))?;
                    let mut left = left;
                    {
                        let mut step = &mut left;
                        while let R::Pred(ref mut lhs, _) = step.r {
                            step = lhs;
                        }
                        step.keep_array = true;
                    }
                    left
                } else {
                    let rhs = self.expression(0)?;
                    self.advance(Some("]"))?;
                    rn(R::Pred(Box::new(left), Box::new(rhs)), pos)
                }
            }
            "{" => {
                let pairs = self.object_pairs()?;
                rn(R::Group(Box::new(left), pairs), pos)
            }
            "^" => {
                self.advance(Some("("))?;
                let mut terms = Vec::new();
                loop {
                    let mut desc = false;
                    if self.is_op("<") {
                        self.advance(Some("<"))?;
                    } else if self.is_op(">") {
                        desc = true;
                        self.advance(Some(">"))?;
                    }
                    terms.push((desc, self.expression(0)?));
                    if !self.is_op(",") {
                        break;
                    }
                    self.advance(Some(","))?;
                }
                self.advance(Some(")"))?;
                rn(R::Sort(Box::new(left), terms), pos)
            }
            "(" => self.call(left, pos)?,
            other => return Err(Error::token("S0201", Some(pos), other)),
        })
    }

    fn call(&mut self, left: RNode, pos: usize) -> Result<RNode, Error> {
        let mut args = Vec::new();
        let mut partial = false;
        if !self.is_op(")") {
            loop {
                if self.is_op("?") {
                    partial = true;
                    let p = self.tok.pos;
                    self.advance(Some("?"))?;
                    args.push(rn(R::Placeholder, p));
                } else {
                    args.push(self.expression(0)?);
                }
                if !self.is_op(",") {
                    break;
                }
                self.advance(Some(","))?;
            }
        }
        self.advance(Some(")"))?;
        if let R::Name(n) = &left.r {
            if n == "function" || n == "λ" {
                let mut params = Vec::new();
                for (ai, a) in args.into_iter().enumerate() {
                    match a.r {
                        R::Var(v) => params.push(v),
                        _ => {
                            let v = (ai + 1).to_string();
                            return Err(Error::with(
                                "S0208",
                                Some(a.pos),
                                Inserts {
                                    value: Some(v),
                                    ..Default::default()
                                },
                            ));
                        }
                    }
                }
                let mut signature = None;
                if self.is_op("<") {
                    let sig_text = self.lexer_signature()?;
                    signature = Some(Signature::parse(&sig_text)?);
                }
                self.advance(Some("{"))?;
                let body = self.expression(0)?;
                self.advance(Some("}"))?;
                return Ok(rn(R::Lambda(params, signature, Box::new(body)), pos));
            }
        }
        Ok(rn(R::Call(Box::new(left), args, partial), pos))
    }

    /// Read a raw signature `<...>` from the token stream (current token is `<`).
    fn lexer_signature(&mut self) -> Result<String, Error> {
        // Re-scan characters: the current token `<` has been lexed; collect tokens'
        // source text until the matching `>`.
        let mut sig = String::from("<");
        let mut depth = 1;
        loop {
            self.advance(None)?;
            let text = match &self.tok.tok {
                Tok::End => return Err(Error::code("S0203", Some(self.tok.pos))),
                Tok::Op("<") => {
                    depth += 1;
                    "<".to_string()
                }
                Tok::Op(">") => {
                    depth -= 1;
                    ">".to_string()
                }
                Tok::Op(">=") => {
                    depth -= 1;
                    ">=".to_string()
                }
                t => tok_text(t),
            };
            sig.push_str(&text);
            if depth == 0 {
                break;
            }
        }
        self.advance(None)?;
        Ok(sig)
    }
}

/// Parse an expression into the processed tree.
pub(crate) fn parse(src: &str) -> Result<Node, Error> {
    parse_with(src, true)
}

/// Parse with or without the 2.1 coalescing operators.
pub(crate) fn parse_with(src: &str, coalescing: bool) -> Result<Node, Error> {
    let mut lexer = Lexer::new(src);
    let first = lexer.next(true)?;
    if let Tok::Op(op @ ("!" | "~")) = first.tok {
        return Err(Error::token("S0204", Some(first.pos), op));
    }
    let mut p = Parser {
        lexer,
        tok: first,
        depth: 0,
        coalescing,
    };
    let raw = p.expression(0)?;
    if p.tok.tok != Tok::End {
        return Err(Error::token(
            "S0201",
            Some(p.tok.pos),
            &tok_text(&p.tok.tok),
        ));
    }
    let mut pr = Processor {
        slots: Vec::new(),
        depth: 0,
    };
    let mut ast = pr.process(raw)?;
    if matches!(ast.kind, Kind::Parent(_)) || !ast.seeking.is_empty() {
        return Err(Error::token("S0217", Some(ast.pos), ast.type_name()));
    }
    pr.resolve_labels(&mut ast);
    Ok(ast)
}

/// A parent slot: its label (resolved into nodes at the end) and remaining level.
struct Slot {
    label: String,
    level: i32,
}

struct Processor {
    slots: Vec<Slot>,
    depth: usize,
}

/// JSONata's `pushAncestry`: collect the slots `value` still seeks into `into`.
fn push_ancestry(into: &mut Vec<usize>, value: &Node) {
    if !value.seeking.is_empty() || value.slot.is_some() {
        into.extend(value.seeking.iter().copied());
        if let Some(s) = value.slot {
            into.push(s);
        }
    }
}

fn wrap_path(step: Node) -> Node {
    let pos = step.pos;
    Node::new(Kind::Path(vec![step]), pos)
}

fn last_step_mut(n: &mut Node) -> &mut Node {
    let is_path = matches!(&n.kind, Kind::Path(s) if !s.is_empty());
    if !is_path {
        return n;
    }
    match n.kind {
        Kind::Path(ref mut steps) => {
            let i = steps.len() - 1;
            &mut steps[i]
        }
        _ => n,
    }
}

#[allow(clippy::boxed_local)]
impl Processor {
    fn process(&mut self, r: RNode) -> Result<Node, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::code("D1011", Some(r.pos)));
        }
        let keep_array = r.keep_array;
        let out = self.process_inner(r);
        self.depth -= 1;
        let mut n = out?;
        if keep_array {
            n.keep_array = true;
        }
        Ok(n)
    }

    fn process_inner(&mut self, r: RNode) -> Result<Node, Error> {
        let pos = r.pos;
        let keep_array = r.keep_array;
        match r.r {
            R::Dot(l, rr) => self.arm_dot(l, rr, pos, keep_array),
            R::Pred(l, rr) => self.arm_pred(l, rr, pos, keep_array),
            R::Group(l, pairs) => self.arm_group(l, pairs, pos, keep_array),
            R::Sort(l, terms) => self.arm_sort(l, terms, pos, keep_array),
            R::Bind(l, rr) => self.arm_bind(l, rr, pos, keep_array),
            R::Focus(l, name) => self.arm_focus(l, name, pos, keep_array),
            R::Index(l, name) => self.arm_index(l, name, pos, keep_array),
            R::Apply(l, rr) => self.arm_apply(l, rr, pos, keep_array),
            R::Binary(op, l, rr) => self.arm_binary(op, l, rr, pos, keep_array),
            R::Neg(e) => self.arm_neg(e, pos, keep_array),
            R::Array(items) => self.arm_array(items, pos, keep_array),
            R::Object(pairs) => self.arm_object(pairs, pos, keep_array),
            R::Block(items) => self.arm_block(items, pos, keep_array),
            R::Call(procedure, args, partial) => {
                self.arm_call(procedure, args, partial, pos, keep_array)
            }
            R::Lambda(params, signature, body) => {
                self.arm_lambda(params, signature, body, pos, keep_array)
            }
            R::Cond(c, t, e) => self.arm_cond(c, t, e, pos, keep_array),
            R::Coalesce(l, rr) => self.arm_coalesce(l, rr, pos, keep_array),
            R::Elvis(l, rr) => self.arm_elvis(l, rr, pos, keep_array),
            R::Transform(pat, upd, del) => self.arm_transform(pat, upd, del, pos, keep_array),
            R::Name(s) => self.arm_name(s, pos, keep_array),
            R::OpName(s) => self.arm_opname(s, pos, keep_array),
            R::Parent => self.arm_parent(pos, keep_array),
            R::Regex(pattern, flags) => self.arm_regex(pattern, flags, pos, keep_array),
            R::End => Err(Error::code("S0207", Some(pos))),
            other => Ok(Self::arm_leaf(other, pos)),
        }
    }

    #[inline(never)]
    fn arm_leaf(r: R, pos: usize) -> Node {
        let kind = match r {
            R::Var(v) => Kind::Variable(v),
            R::Str(s) => Kind::Str(s),
            R::Num(x) => Kind::Num(x),
            R::Bool(b) => Kind::Bool(b),
            R::Wildcard => Kind::Wildcard,
            R::Descendant => Kind::Descendant,
            R::Placeholder => Kind::Placeholder,
            _ => Kind::Null,
        };
        Node::new(kind, pos)
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_dot(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let lstep = self.process(*l)?;
            let mut result = if matches!(lstep.kind, Kind::Path(_)) {
                lstep
            } else {
                let parent_slot = lstep.slot;
                let mut path = wrap_path(lstep);
                if let Some(s) = parent_slot {
                    path.seeking = vec![s];
                }
                path
            };
            let mut rest = self.process(*rr)?;
            if let Kind::Path(steps) = &mut result.kind {
                if let Kind::Path(rsteps) = &mut rest.kind {
                    steps.append(rsteps);
                } else {
                    if rest.predicate.is_some() {
                        rest.stages = rest.predicate.take();
                    }
                    steps.push(rest);
                }
                for s in steps.iter_mut() {
                    let lit = match &s.kind {
                        Kind::Num(x) => Some(crate::value::js_number_string(*x)),
                        Kind::Bool(b) => Some(b.to_string()),
                        Kind::Null => Some("null".to_string()),
                        _ => None,
                    };
                    if let Some(v) = lit {
                        return Err(Error::value("S0213", Some(s.pos), v));
                    }
                    if let Kind::Str(st) = &s.kind {
                        s.kind = Kind::Name(st.clone());
                    }
                }
                let keep = steps.iter().any(|s| s.keep_array);
                if let Some(first) = steps.first_mut() {
                    if matches!(first.kind, Kind::Array(_)) {
                        first.consarray = true;
                    }
                }
                if let Some(last) = steps.last_mut() {
                    if matches!(last.kind, Kind::Array(_)) {
                        last.consarray = true;
                    }
                }
                if keep {
                    result.keep_singleton_array = true;
                }
            }
            self.resolve_ancestry(&mut result)?;
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_pred(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut result = self.process(*l)?;
            let is_path = matches!(result.kind, Kind::Path(_));
            if last_step_mut(&mut result).group.is_some() {
                return Err(Error::code("S0209", Some(pos)));
            }
            let predicate = self.process(*rr)?;
            if !predicate.seeking.is_empty() {
                let seeking = predicate.seeking.clone();
                for slot in seeking {
                    if self.slots[slot].level == 1 {
                        let step = last_step_mut(&mut result);
                        self.seek_parent(step, slot)?;
                    } else {
                        self.slots[slot].level -= 1;
                    }
                }
                let step = last_step_mut(&mut result);
                push_ancestry(&mut step.seeking, &predicate);
            }
            let step = last_step_mut(&mut result);
            let stage = Stage::Filter(Box::new(predicate));
            if is_path {
                step.stages.get_or_insert_with(Vec::new).push(stage);
            } else {
                step.predicate.get_or_insert_with(Vec::new).push(stage);
            }
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_group(
        &mut self,
        l: Box<RNode>,
        pairs: Vec<(RNode, RNode)>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut result = self.process(*l)?;
            if result.group.is_some() {
                return Err(Error::code("S0210", Some(pos)));
            }
            let mut g = Vec::new();
            for (k, v) in pairs {
                let k = self.process(k)?;
                let v = self.process(v)?;
                g.push((k, v));
            }
            result.group = Some(g);
            result.group_pos = pos;
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_sort(
        &mut self,
        l: Box<RNode>,
        terms: Vec<(bool, RNode)>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let l = self.process(*l)?;
            let mut result = if matches!(l.kind, Kind::Path(_)) {
                l
            } else {
                wrap_path(l)
            };
            let mut seeking = Vec::new();
            let mut ts = Vec::new();
            for (desc, e) in terms {
                let e = self.process(e)?;
                push_ancestry(&mut seeking, &e);
                ts.push(SortTerm {
                    descending: desc,
                    expr: e,
                });
            }
            let mut sort = Node::new(Kind::Sort(ts), pos);
            sort.seeking = seeking;
            if let Kind::Path(steps) = &mut result.kind {
                steps.push(sort);
            }
            self.resolve_ancestry(&mut result)?;
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_bind(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let name = match l.r {
                R::Var(v) => v,
                _ => return Err(Error::token("S0212", Some(pos), ":=")),
            };
            let rhs = self.process(*rr)?;
            let mut seeking = Vec::new();
            push_ancestry(&mut seeking, &rhs);
            let mut n = Node::new(Kind::Bind(name, Box::new(rhs)), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_focus(
        &mut self,
        l: Box<RNode>,
        name: String,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut result = self.process(*l)?;
            let step = last_step_mut(&mut result);
            if step.stages.is_some() || step.predicate.is_some() {
                return Err(Error::code("S0215", Some(pos)));
            }
            if matches!(step.kind, Kind::Sort(_)) {
                return Err(Error::code("S0216", Some(pos)));
            }
            if keep_array {
                step.keep_array = true;
            }
            step.focus = Some(name);
            step.tuple = true;
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_index(
        &mut self,
        l: Box<RNode>,
        name: String,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut result = self.process(*l)?;
            if !matches!(result.kind, Kind::Path(_)) {
                if result.predicate.is_some() {
                    result.stages = result.predicate.take();
                }
                result = wrap_path(result);
            }
            let step = last_step_mut(&mut result);
            match &mut step.stages {
                None => step.index = Some(name),
                Some(st) => st.push(Stage::Index(name)),
            }
            step.tuple = true;
            result
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_apply(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let l = self.process(*l)?;
            let rr = self.process(*rr)?;
            let ka = l.keep_array || rr.keep_array;
            let mut n = Node::new(Kind::Apply(Box::new(l), Box::new(rr)), pos);
            n.keep_array = ka;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_binary(
        &mut self,
        op: &'static str,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let l = self.process(*l)?;
            let rr = self.process(*rr)?;
            let mut seeking = Vec::new();
            push_ancestry(&mut seeking, &l);
            push_ancestry(&mut seeking, &rr);
            let bop = match op {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Mod,
                "=" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "&" => BinOp::Concat,
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "in" => BinOp::In,
                _ => BinOp::Range,
            };
            let mut n = Node::new(Kind::Binary(bop, Box::new(l), Box::new(rr)), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_neg(&mut self, e: Box<RNode>, pos: usize, keep_array: bool) -> Result<Node, Error> {
        Ok({
            let e = self.process(*e)?;
            if let Kind::Num(x) = e.kind {
                let mut n = e;
                n.kind = Kind::Num(-x);
                n
            } else {
                let mut seeking = Vec::new();
                push_ancestry(&mut seeking, &e);
                let mut n = Node::new(Kind::Negate(Box::new(e)), pos);
                n.seeking = seeking;
                n
            }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_array(
        &mut self,
        items: Vec<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let mut out = Vec::new();
            for i in items {
                let v = self.process(i)?;
                push_ancestry(&mut seeking, &v);
                out.push(v);
            }
            let mut n = Node::new(Kind::Array(out), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_object(
        &mut self,
        pairs: Vec<(RNode, RNode)>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let mut out = Vec::new();
            for (k, v) in pairs {
                let k = self.process(k)?;
                push_ancestry(&mut seeking, &k);
                let v = self.process(v)?;
                push_ancestry(&mut seeking, &v);
                out.push((k, v));
            }
            let mut n = Node::new(Kind::Object(out), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_block(
        &mut self,
        items: Vec<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let mut out = Vec::new();
            let mut consarray = false;
            for i in items {
                let v = self.process(i)?;
                push_ancestry(&mut seeking, &v);
                if v.consarray
                    || matches!(&v.kind, Kind::Path(s) if s.first().map(|f| f.consarray).unwrap_or(false))
                {
                    consarray = true;
                }
                out.push(v);
            }
            let mut n = Node::new(Kind::Block(out), pos);
            n.consarray = consarray;
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_call(
        &mut self,
        procedure: Box<RNode>,
        args: Vec<RNode>,
        partial: bool,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let mut out = Vec::new();
            for a in args {
                let v = self.process(a)?;
                push_ancestry(&mut seeking, &v);
                out.push(v);
            }
            let procedure = Box::new(self.process(*procedure)?);
            let kind = if partial {
                Kind::Partial {
                    proc: procedure,
                    args: out,
                }
            } else {
                Kind::Call {
                    proc: procedure,
                    args: out,
                    tail: false,
                }
            };
            let mut n = Node::new(kind, pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_lambda(
        &mut self,
        params: Vec<String>,
        signature: Option<Signature>,
        body: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut body = self.process(*body)?;
            tail_call_optimize(&mut body);
            Node::new(
                Kind::Lambda(Arc::new(LambdaDef {
                    params,
                    signature,
                    body,
                })),
                pos,
            )
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_cond(
        &mut self,
        c: Box<RNode>,
        t: Box<RNode>,
        e: Option<Box<RNode>>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let c = self.process(*c)?;
            push_ancestry(&mut seeking, &c);
            let t = self.process(*t)?;
            push_ancestry(&mut seeking, &t);
            let e = match e {
                Some(e) => {
                    let e = self.process(*e)?;
                    push_ancestry(&mut seeking, &e);
                    Some(Box::new(e))
                }
                None => None,
            };
            let mut n = Node::new(Kind::Condition(Box::new(c), Box::new(t), e), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_coalesce(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let l = self.process(*l)?;
            push_ancestry(&mut seeking, &l);
            let rr = self.process(*rr)?;
            push_ancestry(&mut seeking, &rr);
            let mut n = Node::new(Kind::Coalesce(Box::new(l), Box::new(rr)), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_elvis(
        &mut self,
        l: Box<RNode>,
        rr: Box<RNode>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let mut seeking = Vec::new();
            let l = self.process(*l)?;
            push_ancestry(&mut seeking, &l);
            let rr = self.process(*rr)?;
            push_ancestry(&mut seeking, &rr);
            let mut n = Node::new(Kind::Elvis(Box::new(l), Box::new(rr)), pos);
            n.seeking = seeking;
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_transform(
        &mut self,
        pat: Box<RNode>,
        upd: Box<RNode>,
        del: Option<Box<RNode>>,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let pat = self.process(*pat)?;
            let upd = self.process(*upd)?;
            let del = match del {
                Some(d) => Some(self.process(*d)?),
                None => None,
            };
            Node::new(
                Kind::Transform(Arc::new(TransformDef {
                    pattern: pat,
                    update: upd,
                    delete: del,
                    pos,
                })),
                pos,
            )
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_name(&mut self, s: String, pos: usize, keep_array: bool) -> Result<Node, Error> {
        Ok({
            let mut step = Node::new(Kind::Name(s), pos);
            step.keep_array = keep_array;
            let mut path = wrap_path(step);
            path.keep_singleton_array = keep_array;
            path
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_opname(&mut self, s: &'static str, pos: usize, keep_array: bool) -> Result<Node, Error> {
        Ok({
            let mut step = Node::new(Kind::Name(s.to_string()), pos);
            step.keep_array = keep_array;
            let mut path = wrap_path(step);
            path.keep_singleton_array = keep_array;
            path
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_parent(&mut self, pos: usize, keep_array: bool) -> Result<Node, Error> {
        Ok({
            let id = self.slots.len();
            self.slots.push(Slot {
                label: format!("!{}", id),
                level: 1,
            });
            let mut n = Node::new(Kind::Parent(String::new()), pos);
            n.slot = Some(id);
            n
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn arm_regex(
        &mut self,
        pattern: String,
        flags: String,
        pos: usize,
        keep_array: bool,
    ) -> Result<Node, Error> {
        Ok({
            let re = regress::Regex::with_flags(&pattern, flags.as_str())
                .map_err(|e| Error::value("S0303", Some(pos), format!("/{}/: {}", pattern, e)))?;
            Node::new(Kind::Regex(Arc::new(re)), pos)
        })
    }

    /// JSONata's `seekParent`: find the step a parent slot refers to and label it.
    fn seek_parent(&mut self, node: &mut Node, slot: usize) -> Result<(), Error> {
        match &mut node.kind {
            Kind::Name(_) | Kind::Wildcard => {
                self.slots[slot].level -= 1;
                if self.slots[slot].level == 0 {
                    if let Some(existing) = node.ancestor_slot {
                        self.slots[slot].label = self.slots[existing].label.clone();
                    }
                    node.ancestor_slot = Some(slot);
                    node.tuple = true;
                }
            }
            Kind::Parent(_) => {
                self.slots[slot].level += 1;
            }
            Kind::Block(items) => {
                if let Some(last) = items.last_mut() {
                    node.tuple = true;
                    self.seek_parent(last, slot)?;
                }
            }
            Kind::Path(steps) => {
                node.tuple = true;
                let mut index = steps.len() as isize - 1;
                if index >= 0 {
                    self.seek_parent(&mut steps[index as usize], slot)?;
                    index -= 1;
                    while self.slots[slot].level > 0 && index >= 0 {
                        self.seek_parent(&mut steps[index as usize], slot)?;
                        index -= 1;
                    }
                }
            }
            _ => {
                return Err(Error::token("S0217", Some(node.pos), node.type_name()));
            }
        }
        Ok(())
    }

    /// JSONata's `resolveAncestry` for a path whose last step may seek parents.
    fn resolve_ancestry(&mut self, path: &mut Node) -> Result<(), Error> {
        let mut unresolved = Vec::new();
        if let Kind::Path(steps) = &mut path.kind {
            let last = match steps.last() {
                Some(l) => l,
                None => return Ok(()),
            };
            let mut slots = last.seeking.clone();
            if let Some(s) = last.slot {
                slots.push(s);
            }
            for slot in slots {
                let mut index = steps.len() as isize - 2;
                while self.slots[slot].level > 0 {
                    if index < 0 {
                        unresolved.push(slot);
                        break;
                    }
                    let mut i = index as usize;
                    index -= 1;
                    while index >= 0
                        && steps[i].focus.is_some()
                        && steps[index as usize].focus.is_some()
                    {
                        i = index as usize;
                        index -= 1;
                    }
                    self.seek_parent(&mut steps[i], slot)?;
                }
            }
        }
        path.seeking.extend(unresolved);
        Ok(())
    }

    /// Replace slot ids with their final labels.
    fn resolve_labels(&self, n: &mut Node) {
        if let Some(a) = n.ancestor_slot {
            n.ancestor = Some(self.slots[a].label.clone());
        }
        if let (Kind::Parent(label), Some(s)) = (&mut n.kind, n.slot) {
            *label = self.slots[s].label.clone();
        }
        match &mut n.kind {
            Kind::Path(v) | Kind::Array(v) | Kind::Block(v) => {
                for x in v {
                    self.resolve_labels(x)
                }
            }
            Kind::Object(pairs) => {
                for (k, v) in pairs {
                    self.resolve_labels(k);
                    self.resolve_labels(v);
                }
            }
            Kind::Binary(_, a, b)
            | Kind::Apply(a, b)
            | Kind::Coalesce(a, b)
            | Kind::Elvis(a, b) => {
                self.resolve_labels(a);
                self.resolve_labels(b);
            }
            Kind::Negate(a) | Kind::Bind(_, a) => self.resolve_labels(a),
            Kind::Condition(a, b, c) => {
                self.resolve_labels(a);
                self.resolve_labels(b);
                if let Some(c) = c {
                    self.resolve_labels(c);
                }
            }
            Kind::Call { proc, args, .. } | Kind::Partial { proc, args } => {
                self.resolve_labels(proc);
                for a in args {
                    self.resolve_labels(a);
                }
            }
            Kind::Lambda(def) => {
                if let Some(d) = Arc::get_mut(def) {
                    self.resolve_labels(&mut d.body);
                }
            }
            Kind::Sort(terms) => {
                for t in terms {
                    self.resolve_labels(&mut t.expr);
                }
            }
            Kind::Transform(def) => {
                if let Some(d) = Arc::get_mut(def) {
                    self.resolve_labels(&mut d.pattern);
                    self.resolve_labels(&mut d.update);
                    if let Some(x) = &mut d.delete {
                        self.resolve_labels(x);
                    }
                }
            }
            _ => {}
        }
        for list in [&mut n.predicate, &mut n.stages].into_iter().flatten() {
            for st in list.iter_mut() {
                if let Stage::Filter(x) = st {
                    self.resolve_labels(x);
                }
            }
        }
        if let Some(g) = &mut n.group {
            for (k, v) in g.iter_mut() {
                self.resolve_labels(k);
                self.resolve_labels(v);
            }
        }
    }
}

/// Mark function calls in tail position of a lambda body for trampolining.
fn tail_call_optimize(n: &mut Node) {
    let no_pred = n.predicate.is_none();
    match &mut n.kind {
        Kind::Call { tail, .. } if no_pred => *tail = true,
        Kind::Condition(_, t, e) => {
            tail_call_optimize(t);
            if let Some(e) = e {
                tail_call_optimize(e);
            }
        }
        Kind::Block(items) => {
            if let Some(last) = items.last_mut() {
                tail_call_optimize(last);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(src: &str) -> String {
        parse(src).err().map(|e| e.code).unwrap_or_default()
    }

    #[test]
    fn parses_common_forms() {
        for src in [
            "a.b.c",
            "a[0].b[x > 1]",
            "$sum(a.(b * c))",
            "{'a': 1, 'b': [1, 2, 3]}",
            "function($x, $y){ $x + $y }(1, 2)",
            "a ~> $map(function($v){ $v * 2 })",
            "x ? 1 : 2",
            "a^(>b, c)",
            "a.b@$x.c#$i",
            "| a | {'x': 1}, ['y'] |",
            "[1..5]",
            "$f := λ($x)<n:n>{ $x }",
            "a.%.b",
            "$x ?? 1",
            "/ab+c/i",
        ] {
            assert!(parse(src).is_ok(), "{} failed: {:?}", src, parse(src).err());
        }
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(code("a +"), "S0207");
        assert_eq!(code("(a"), "S0203");
        assert_eq!(code("a b"), "S0201");
        assert_eq!(code("a.1"), "S0213");
        assert_eq!(code("1 := 2"), "S0212");
        assert_eq!(code("a@b"), "S0214");
        assert_eq!(code("%"), "S0217");
        assert_eq!(code("function(a){1}"), "S0208");
        assert_eq!(code(")"), "S0211");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(code(&src), "D1011");
        let src = format!("{}1", "-".repeat(5000));
        assert_eq!(code(&src), "D1011");
    }
}

//! The compiled rule set: all patterns merged into one field-indexed structure, matched
//! in a single pass over the raw bytes of an event.
//!
//! Compilation: every field path any pattern uses becomes a node in a trie of key
//! segments; every field condition of every branch becomes a *slot*; the matchers of a
//! slot are filed under the field, grouped by kind (hash lookup for exact strings, lists
//! for the rest).
//!
//! Matching: the event bytes are walked once. Object keys are looked up in the trie;
//! values under keys no pattern uses are skipped without being parsed (64 bytes at a
//! time for objects/arrays). Each leaf at a used field is tested against that field's
//! matchers; hits mark slots. A branch matches when all its required slots are hit, its
//! `exists: false` fields are absent (or hit), and — when two or more of its hits lie in
//! arrays — some choice of hits is array-consistent.

use crate::error::{EventError, PatternError};
use crate::pattern::{in_range, AnythingBut, Limits, Matcher, Pattern};
use crate::scan;
use crate::values::{self, fixed6, IpBytes, IpRange, WildPart};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Maximum nesting the matcher follows inside the fields patterns use.
const MAX_EVENT_DEPTH: usize = 512;
const NONE: u32 = u32::MAX;

/// A small fast hasher for short byte strings (keys and exact values).
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        let mut tail = 0u64;
        for (k, &b) in chunks.remainder().iter().enumerate() {
            tail |= u64::from(b) << (8 * k);
        }
        h = (h.rotate_left(5) ^ tail ^ bytes.len() as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        self.0 = h;
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A numeric bound: value and whether it is open (excluded).
type Bound = Option<(i64, bool)>;

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Byte-string keyed lookup: a short list scanned linearly, or a hash map when large.
#[derive(Debug, Clone)]
enum ByteMap<V> {
    Small(Vec<(Box<[u8]>, V)>),
    Big(FastMap<Box<[u8]>, V>),
}

impl<V> Default for ByteMap<V> {
    fn default() -> Self {
        ByteMap::Small(Vec::new())
    }
}

impl<V> ByteMap<V> {
    const SMALL: usize = 8;

    #[inline(always)]
    fn get(&self, k: &[u8]) -> Option<&V> {
        match self {
            ByteMap::Small(v) => v.iter().find(|(key, _)| bytes_eq(key, k)).map(|(_, v)| v),
            ByteMap::Big(m) => m.get(k),
        }
    }

    fn get_or_insert_with(&mut self, k: &[u8], f: impl FnOnce() -> V) -> &mut V {
        if let ByteMap::Small(v) = self {
            if v.len() >= Self::SMALL && !v.iter().any(|(key, _)| &**key == k) {
                let m: FastMap<Box<[u8]>, V> = std::mem::take(v).into_iter().collect();
                *self = ByteMap::Big(m);
            }
        }
        match self {
            ByteMap::Small(v) => {
                let pos = match v.iter().position(|(key, _)| &**key == k) {
                    Some(p) => p,
                    None => {
                        v.push((k.into(), f()));
                        v.len() - 1
                    }
                };
                &mut v[pos].1
            }
            ByteMap::Big(m) => m.entry(k.into()).or_insert_with(f),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            ByteMap::Small(v) => v.is_empty(),
            ByteMap::Big(m) => m.is_empty(),
        }
    }
}

/// Byte-string equality with an inline path for short strings.
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}

#[derive(Debug, Clone)]
struct Node {
    children: ByteMap<u32>,
    field: u32,
    /// First bytes of the children's keys (a key starting with any other byte can
    /// neither name a child nor start a dotted path through one).
    first_bytes: [u64; 4],
    /// Lengths of the children's keys (bit 63: 63 or longer).
    lengths: u64,
}

impl Node {
    fn new() -> Node {
        Node {
            children: ByteMap::default(),
            field: NONE,
            first_bytes: [0; 4],
            lengths: 0,
        }
    }

    fn note_child_key(&mut self, key: &[u8]) {
        let first = key.first().copied().unwrap_or(0);
        self.first_bytes[usize::from(first >> 6)] |= 1 << (first & 63);
        if key.is_empty() {
            // an event key starting with '.' walks through the empty segment
            self.first_bytes[usize::from(b'.' >> 6)] |= 1 << (b'.' & 63);
        }
        self.lengths |= 1 << key.len().min(63);
    }

    #[inline(always)]
    fn may_have_first(&self, first: u8) -> bool {
        self.first_bytes[usize::from(first >> 6)] & (1 << (first & 63)) != 0
    }

    #[inline(always)]
    fn may_have_len(&self, len: usize) -> bool {
        self.lengths & (1 << len.min(63)) != 0
    }
}

/// The matchers filed under one field, grouped by kind.
#[derive(Debug, Clone, Default)]
struct FieldPreds {
    exists: Vec<u32>,
    exact: ByteMap<Vec<u32>>,
    exact_ip: Vec<(IpBytes, u32)>,
    num_text: ByteMap<Vec<u32>>,
    num_q: Vec<(i64, u32)>,
    null: Vec<u32>,
    bool_true: Vec<u32>,
    bool_false: Vec<u32>,
    prefix: AffixIndex,
    suffix: AffixIndex,
    prefix_ic: AffixIndex,
    suffix_ic: AffixIndex,
    equals_ic: ByteMap<Vec<u32>>,
    wildcard: Vec<(Vec<WildPart>, u32)>,
    numeric: RangeIndex,
    cidr: Vec<(IpRange, u32)>,
    anything_but: Vec<(AnythingBut, u32)>,
    needs_fold: bool,
    needs_q: bool,
    needs_ip: bool,
    has_string_ops: bool,
}

/// Prefixes (or suffixes) grouped by length: a value is tested with one lookup per
/// distinct length, whatever the number of patterns.
#[derive(Debug, Clone, Default)]
struct AffixIndex {
    buckets: Vec<(usize, ByteMap<Vec<u32>>)>,
}

impl AffixIndex {
    fn add(&mut self, key: &[u8], slot: u32) {
        let pos = match self.buckets.iter().position(|(l, _)| *l == key.len()) {
            Some(p) => p,
            None => {
                self.buckets.push((key.len(), ByteMap::default()));
                self.buckets.len() - 1
            }
        };
        self.buckets[pos]
            .1
            .get_or_insert_with(key, Vec::new)
            .push(slot);
    }

    fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    #[inline]
    fn prefixes_of(&self, s: &[u8], out: &mut Vec<u32>) {
        for (len, map) in &self.buckets {
            if let Some(slots) = s.get(..*len).and_then(|k| map.get(k)) {
                out.extend_from_slice(slots);
            }
        }
    }

    #[inline]
    fn suffixes_of(&self, s: &[u8], out: &mut Vec<u32>) {
        for (len, map) in &self.buckets {
            if *len <= s.len() {
                if let Some(slots) = map.get(&s[s.len() - len..]) {
                    out.extend_from_slice(slots);
                }
            }
        }
    }
}

/// Numeric ranges: a plain list while short, a segment tree over the elementary
/// intervals between range endpoints when long (query O(log n + matches)).
#[derive(Debug, Clone, Default)]
struct RangeIndex {
    list: Vec<(Bound, Bound, u32)>,
    tree: Option<SegTree>,
}

#[derive(Debug, Clone)]
struct SegTree {
    /// Sorted distinct endpoints; unit 2k+1 is the point `ends[k]`, unit 2k the gap below it.
    ends: Vec<i64>,
    size: usize,
    nodes: Vec<Vec<u32>>,
}

impl RangeIndex {
    const TREE_FROM: usize = 16;

    fn finish(&mut self) {
        if self.list.len() < Self::TREE_FROM {
            self.tree = None;
            return;
        }
        let mut ends: Vec<i64> = self
            .list
            .iter()
            .flat_map(|(lo, hi, _)| lo.iter().chain(hi.iter()).map(|b| b.0))
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let units = 2 * ends.len() + 1;
        let size = units.next_power_of_two();
        let mut nodes = vec![Vec::new(); 2 * size];
        let index = |v: i64| ends.binary_search(&v).unwrap_or(0);
        for &(lo, hi, slot) in &self.list {
            let a = match lo {
                None => 0,
                Some((v, open)) => 2 * index(v) + if open { 2 } else { 1 },
            };
            let b = match hi {
                None => units - 1,
                Some((v, open)) => 2 * index(v) + usize::from(!open),
            };
            if a > b {
                continue;
            }
            let (mut l, mut r) = (a + size, b + size + 1);
            while l < r {
                if l & 1 == 1 {
                    nodes[l].push(slot);
                    l += 1;
                }
                if r & 1 == 1 {
                    r -= 1;
                    nodes[r].push(slot);
                }
                l >>= 1;
                r >>= 1;
            }
        }
        self.tree = Some(SegTree { ends, size, nodes });
    }

    #[inline]
    fn query(&self, q: i64, out: &mut Vec<u32>) {
        match &self.tree {
            None => {
                for (lo, hi, slot) in &self.list {
                    if in_range(q, *lo, *hi) {
                        out.push(*slot);
                    }
                }
            }
            Some(t) => {
                let unit = match t.ends.binary_search(&q) {
                    Ok(k) => 2 * k + 1,
                    Err(k) => 2 * k,
                };
                let mut i = unit + t.size;
                while i >= 1 {
                    out.extend_from_slice(&t.nodes[i]);
                    i >>= 1;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    branch: u32,
    required: bool,
    /// The branch has two or more conditions (array consistency may matter).
    multi: bool,
}

#[derive(Debug, Clone)]
struct BranchInfo {
    rule: u32,
    n_required: u32,
    /// (slot, field) of conditions that `exists: false` may satisfy.
    optional: Vec<(u32, u32)>,
    slots: Vec<u32>,
    multi: bool,
}

/// The compiled form of a rule set.
#[derive(Debug, Clone)]
struct Index {
    nodes: Vec<Node>,
    fields: Vec<FieldPreds>,
    slots: Vec<Slot>,
    branches: Vec<BranchInfo>,
    /// Branches with no required condition: evaluated for every event.
    always: Vec<u32>,
    n_rules: usize,
    version: u64,
}

impl Index {
    fn build(rules: &[(String, Pattern)], version: u64) -> Index {
        let mut ix = Index {
            nodes: vec![Node::new()],
            fields: Vec::new(),
            slots: Vec::new(),
            branches: Vec::new(),
            always: Vec::new(),
            n_rules: 0,
            version,
        };
        for (_, pattern) in rules {
            ix.add_rule(pattern);
        }
        ix
    }

    /// Appends one rule (its index is the current rule count).
    fn add_rule(&mut self, pattern: &Pattern) {
        let rule = self.n_rules as u32;
        self.n_rules += 1;
        let mut touched = Vec::new();
        for branch in &pattern.branches {
            let b = self.branches.len() as u32;
            let multi = branch.conds.len() >= 2;
            let mut info = BranchInfo {
                rule,
                n_required: 0,
                optional: Vec::new(),
                slots: Vec::new(),
                multi,
            };
            for cond in &branch.conds {
                let slot = self.slots.len() as u32;
                let field = self.field_for(&cond.path);
                let required = !cond.absent_ok();
                self.slots.push(Slot {
                    branch: b,
                    required,
                    multi,
                });
                info.slots.push(slot);
                if required {
                    info.n_required += 1;
                } else {
                    info.optional.push((slot, field));
                }
                for m in &cond.matchers {
                    self.fields[field as usize].add(m, slot);
                }
                touched.push(field);
            }
            if info.n_required == 0 {
                self.always.push(b);
            }
            self.branches.push(info);
        }
        touched.sort_unstable();
        touched.dedup();
        for f in touched {
            self.fields[f as usize].numeric.finish();
        }
    }

    fn field_for(&mut self, path: &str) -> u32 {
        let mut node = 0usize;
        for seg in path.split('.') {
            let next = self.nodes.len() as u32;
            let child = *self.nodes[node]
                .children
                .get_or_insert_with(seg.as_bytes(), || next);
            if child == next {
                self.nodes.push(Node::new());
                self.nodes[node].note_child_key(seg.as_bytes());
            }
            node = child as usize;
        }
        if self.nodes[node].field == NONE {
            self.nodes[node].field = self.fields.len() as u32;
            self.fields.push(FieldPreds::default());
        }
        self.nodes[node].field
    }
}

impl FieldPreds {
    fn add(&mut self, m: &Matcher, slot: u32) {
        match m {
            Matcher::ExactStr { s, ip } => {
                self.exact
                    .get_or_insert_with(s.as_bytes(), Vec::new)
                    .push(slot);
                if let Some(ip) = ip {
                    self.exact_ip.push((*ip, slot));
                    self.needs_ip = true;
                }
            }
            Matcher::ExactNum { text, q } => {
                self.num_text
                    .get_or_insert_with(text.as_bytes(), Vec::new)
                    .push(slot);
                if let Some(q) = q {
                    self.num_q.push((*q, slot));
                    self.needs_q = true;
                }
            }
            Matcher::Null => self.null.push(slot),
            Matcher::Bool(true) => self.bool_true.push(slot),
            Matcher::Bool(false) => self.bool_false.push(slot),
            Matcher::Prefix(p) => self.prefix.add(p.as_bytes(), slot),
            Matcher::Suffix(p) => self.suffix.add(p.as_bytes(), slot),
            Matcher::PrefixIc(p) => {
                self.prefix_ic.add(p.as_bytes(), slot);
                self.needs_fold = true;
            }
            Matcher::SuffixIc(p) => {
                self.suffix_ic.add(p.as_bytes(), slot);
                self.needs_fold = true;
            }
            Matcher::EqualsIc(p) => {
                self.equals_ic
                    .get_or_insert_with(p.as_bytes(), Vec::new)
                    .push(slot);
                self.needs_fold = true;
            }
            Matcher::Wildcard(w) => self.wildcard.push((w.clone(), slot)),
            Matcher::Numeric { lo, hi } => {
                self.numeric.list.push((*lo, *hi, slot));
                self.needs_q = true;
            }
            Matcher::Cidr(r) => {
                self.cidr.push((*r, slot));
                self.needs_ip = true;
            }
            Matcher::Exists(true) => self.exists.push(slot),
            Matcher::Exists(false) => {}
            Matcher::AnythingBut(ab) => {
                match ab {
                    AnythingBut::Numbers(_) => self.needs_q = true,
                    AnythingBut::IgnoreCase(_) => self.needs_fold = true,
                    _ => {}
                }
                self.anything_but.push((ab.clone(), slot));
            }
        }
        self.has_string_ops = !self.prefix.is_empty()
            || !self.suffix.is_empty()
            || !self.wildcard.is_empty()
            || self.needs_fold
            || self.needs_ip;
    }

    /// Tests a string leaf (`s` decoded), pushing hit slots into `out`.
    #[inline]
    fn eval_str(&self, s: &[u8], fold_buf: &mut String, out: &mut Vec<u32>) {
        if let Some(slots) = self.exact.get(s) {
            out.extend_from_slice(slots);
        }
        let mut folded = false;
        if self.has_string_ops {
            self.prefix.prefixes_of(s, out);
            self.suffix.suffixes_of(s, out);
            for (w, slot) in &self.wildcard {
                if values::wildcard_match(w, s) {
                    out.push(*slot);
                }
            }
            let text = std::str::from_utf8(s).ok();
            if self.needs_fold {
                if let Some(t) = text {
                    values::fold_into(t, fold_buf);
                    folded = true;
                    let f = fold_buf.as_bytes();
                    if let Some(slots) = self.equals_ic.get(f) {
                        out.extend_from_slice(slots);
                    }
                    self.prefix_ic.prefixes_of(f, out);
                    self.suffix_ic.suffixes_of(f, out);
                }
            }
            if self.needs_ip {
                if let Some(ip) = text.filter(|t| looks_like_ip(t)).and_then(values::parse_ip) {
                    for (r, slot) in &self.cidr {
                        if r.contains(&ip) {
                            out.push(*slot);
                        }
                    }
                    for (a, slot) in &self.exact_ip {
                        if *a == ip {
                            out.push(*slot);
                        }
                    }
                }
            }
        }
        for (ab, slot) in &self.anything_but {
            let excluded = match ab {
                AnythingBut::Strings(set) => set.iter().any(|x| bytes_eq(x.as_bytes(), s)),
                AnythingBut::Numbers(_) => false,
                AnythingBut::IgnoreCase(set) => {
                    // needs_fold is set for these, so the value was folded above
                    folded
                        && set
                            .iter()
                            .any(|x| bytes_eq(x.as_bytes(), fold_buf.as_bytes()))
                }
                AnythingBut::Prefixes(set) => set.iter().any(|p| {
                    let p = p.as_bytes();
                    s.get(..p.len()).is_some_and(|h| bytes_eq(h, p))
                }),
                AnythingBut::Suffixes(set) => set.iter().any(|p| {
                    let p = p.as_bytes();
                    p.len() <= s.len() && bytes_eq(&s[s.len() - p.len()..], p)
                }),
                AnythingBut::Wildcards(set) => set.iter().any(|w| values::wildcard_match(w, s)),
            };
            if !excluded {
                out.push(*slot);
            }
        }
    }

    /// Tests a number leaf (its text as written).
    #[inline]
    fn eval_num(&self, text: &[u8], out: &mut Vec<u32>) {
        if let Some(slots) = self.num_text.get(text) {
            out.extend_from_slice(slots);
        }
        let q = if self.needs_q { fixed6(text) } else { None };
        if let Some(q) = q {
            for (v, slot) in &self.num_q {
                if *v == q {
                    out.push(*slot);
                }
            }
            self.numeric.query(q, out);
        }
        for (ab, slot) in &self.anything_but {
            let excluded = match ab {
                AnythingBut::Numbers(set) => q.is_some_and(|q| set.contains(&q)),
                _ => false,
            };
            if !excluded {
                out.push(*slot);
            }
        }
    }

    /// Tests a `true`/`false`/`null` leaf.
    #[inline]
    fn eval_literal(&self, lit: u8, out: &mut Vec<u32>) {
        match lit {
            b't' => out.extend_from_slice(&self.bool_true),
            b'f' => out.extend_from_slice(&self.bool_false),
            _ => out.extend_from_slice(&self.null),
        }
        for (_, slot) in &self.anything_but {
            out.push(*slot);
        }
    }
}

#[inline]
fn looks_like_ip(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 2 && b.len() <= 45 && (b[0].is_ascii_hexdigit() || b[0] == b':')
}

/// Reusable per-thread working memory for matching (see [`RuleSet::match_with`]).
#[derive(Debug, Default)]
pub struct Scratch {
    version: u64,
    slot_hit: Vec<bool>,
    slot_free: Vec<bool>,
    touched_slots: Vec<u32>,
    branch_count: Vec<u32>,
    touched_branches: Vec<u32>,
    field_seen: Vec<bool>,
    touched_fields: Vec<u32>,
    trail: Vec<(u32, u32)>,
    next_array: u32,
    trail_hits: Vec<(u32, u32, u32)>,
    arena: Vec<(u32, u32)>,
    rule_gen: Vec<u32>,
    gen: u32,
    buf: Vec<u8>,
    key_buf: Vec<u8>,
    fold: String,
    hits: Vec<u32>,
}

impl Scratch {
    fn fit(&mut self, ix: &Index) {
        if self.version == ix.version && self.slot_hit.len() == ix.slots.len() {
            return;
        }
        self.version = ix.version;
        self.slot_hit = vec![false; ix.slots.len()];
        self.slot_free = vec![false; ix.slots.len()];
        self.branch_count = vec![0; ix.branches.len()];
        self.field_seen = vec![false; ix.fields.len()];
        self.rule_gen = vec![0; ix.n_rules];
        self.gen = 0;
        self.reset();
    }

    fn reset(&mut self) {
        for &s in &self.touched_slots {
            self.slot_hit[s as usize] = false;
            self.slot_free[s as usize] = false;
        }
        self.touched_slots.clear();
        for &b in &self.touched_branches {
            self.branch_count[b as usize] = 0;
        }
        self.touched_branches.clear();
        for &f in &self.touched_fields {
            self.field_seen[f as usize] = false;
        }
        self.touched_fields.clear();
        self.trail.clear();
        self.next_array = 0;
        self.trail_hits.clear();
        self.arena.clear();
    }
}

/// Many named patterns compiled into one matcher.
///
/// Matching an event returns the names of all rules whose pattern matches, in one pass
/// over the event's bytes. Rules can be added and removed at any time; the compiled
/// index is rebuilt on each change (use [`RuleSet::extend`] to add many at once).
///
/// ```
/// use event_patterns::RuleSet;
/// let mut rules = RuleSet::new();
/// rules.add_json("ec2", r#"{"source": ["aws.ec2"]}"#).unwrap();
/// rules.add_json("big", r#"{"detail": {"size": [{"numeric": [">", 1000]}]}}"#).unwrap();
/// let hits = rules.matches(br#"{"source": "aws.ec2", "detail": {"size": 4096}}"#).unwrap();
/// assert_eq!(hits, vec!["ec2", "big"]);
/// ```
#[derive(Debug, Clone)]
pub struct RuleSet {
    limits: Limits,
    rules: Vec<(String, Pattern)>,
    index: Index,
    version: u64,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::new()
    }
}

impl RuleSet {
    /// An empty rule set with EventBridge's limits.
    pub fn new() -> RuleSet {
        RuleSet::with_limits(Limits::default())
    }

    /// An empty rule set whose text patterns are parsed with `limits`.
    pub fn with_limits(limits: Limits) -> RuleSet {
        RuleSet {
            limits,
            rules: Vec::new(),
            index: Index::build(&[], 1),
            version: 1,
        }
    }

    fn rebuild(&mut self) {
        self.version += 1;
        self.index = Index::build(&self.rules, self.version);
    }

    fn put(&mut self, name: String, pattern: Pattern) {
        match self.rules.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = pattern,
            None => self.rules.push((name, pattern)),
        }
    }

    /// Adds (or replaces) the rule `name`. Adding a new name extends the compiled index
    /// in place; replacing a rule rebuilds it.
    pub fn add(&mut self, name: impl Into<String>, pattern: Pattern) {
        let name = name.into();
        if self.rules.iter().any(|(n, _)| *n == name) {
            self.put(name, pattern);
            self.rebuild();
        } else {
            self.version += 1;
            self.index.version = self.version;
            self.index.add_rule(&pattern);
            self.rules.push((name, pattern));
        }
    }

    /// Parses `pattern` and adds (or replaces) the rule `name`.
    pub fn add_json(&mut self, name: impl Into<String>, pattern: &str) -> Result<(), PatternError> {
        let p = Pattern::parse_with(pattern, &self.limits)?;
        self.add(name, p);
        Ok(())
    }

    /// Adds (or replaces) many rules with a single rebuild.
    pub fn extend<I, S>(&mut self, rules: I)
    where
        I: IntoIterator<Item = (S, Pattern)>,
        S: Into<String>,
    {
        for (name, p) in rules {
            self.put(name.into(), p);
        }
        self.rebuild();
    }

    /// Removes the rule `name`; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(n, _)| n != name);
        let removed = self.rules.len() != before;
        if removed {
            self.rebuild();
        }
        removed
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rule names in insertion order; [`RuleSet::match_with`] reports indexes into this.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(n, _)| n.as_str())
    }

    /// The name of the rule at `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.rules.get(index).map(|(n, _)| n.as_str())
    }

    /// The pattern of rule `name`.
    pub fn pattern(&self, name: &str) -> Option<&Pattern> {
        self.rules.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Working memory for [`RuleSet::match_with`]; reuse it across events.
    pub fn scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// Names of the rules matching the JSON event `event` (in rule order).
    pub fn matches(&self, event: &[u8]) -> Result<Vec<&str>, EventError> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        self.match_with(&mut scratch, event, |i| out.push(i))?;
        out.sort_unstable();
        Ok(out.into_iter().filter_map(|i| self.name(i)).collect())
    }

    /// Matches `event`, calling `on_match` once with the index of each matching rule.
    pub fn match_with(
        &self,
        scratch: &mut Scratch,
        event: &[u8],
        mut on_match: impl FnMut(usize),
    ) -> Result<(), EventError> {
        let ix = &self.index;
        scratch.fit(ix);
        scratch.reset();
        let start = scan::skip_ws(event, 0);
        if event.get(start) != Some(&b'{') {
            return Err(EventError::Malformed {
                offset: start,
                what: "a JSON object",
            });
        }
        let mut walker = Walker {
            b: event,
            ix,
            st: scratch,
            depth: 0,
        };
        walker.object(start, 0)?;
        let st = walker.st;
        st.gen = st.gen.wrapping_add(1);
        if st.gen == 0 {
            st.rule_gen.iter_mut().for_each(|g| *g = 0);
            st.gen = 1;
        }
        let gen = st.gen;
        let n_touched = st.touched_branches.len();
        for k in 0..n_touched + ix.always.len() {
            let b = if k < n_touched {
                st.touched_branches[k]
            } else {
                ix.always[k - n_touched]
            };
            let info = &ix.branches[b as usize];
            if st.branch_count[b as usize] != info.n_required {
                continue;
            }
            if info
                .optional
                .iter()
                .any(|&(slot, field)| !st.slot_hit[slot as usize] && st.field_seen[field as usize])
            {
                continue;
            }
            if info.multi && !st.trail_hits.is_empty() && !consistent(info, st) {
                continue;
            }
            let r = info.rule as usize;
            if st.rule_gen[r] != gen {
                st.rule_gen[r] = gen;
                on_match(r);
            }
        }
        Ok(())
    }
}

/// Is there an array-consistent choice of hits for the branch's conditions?
fn consistent(info: &BranchInfo, st: &Scratch) -> bool {
    let mut lists: Vec<Vec<&[(u32, u32)]>> = Vec::new();
    for &slot in &info.slots {
        if !st.slot_hit[slot as usize] || st.slot_free[slot as usize] {
            continue; // satisfied by absence, or by a leaf outside all arrays
        }
        let trails: Vec<&[(u32, u32)]> = st
            .trail_hits
            .iter()
            .filter(|(s, _, _)| *s == slot)
            .map(|&(_, start, len)| &st.arena[start as usize..(start + len) as usize])
            .collect();
        lists.push(trails);
    }
    if lists.len() <= 1 {
        return true;
    }
    fn ok(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
        a.iter()
            .all(|(id, i)| b.iter().all(|(id2, i2)| id != id2 || i == i2))
    }
    fn search<'t>(lists: &[Vec<&'t [(u32, u32)]>], chosen: &mut Vec<&'t [(u32, u32)]>) -> bool {
        let Some((first, rest)) = lists.split_first() else {
            return true;
        };
        for t in first {
            if chosen.iter().all(|c| ok(c, t)) {
                chosen.push(t);
                if search(rest, chosen) {
                    return true;
                }
                chosen.pop();
            }
        }
        false
    }
    search(&lists, &mut Vec::new())
}

struct Walker<'e, 'x, 's> {
    b: &'e [u8],
    ix: &'x Index,
    st: &'s mut Scratch,
    depth: usize,
}

fn malformed(offset: usize, what: &'static str) -> EventError {
    EventError::Malformed { offset, what }
}

impl Walker<'_, '_, '_> {
    /// Walks the object at `i` (holding `{`) whose trie node is `node`; returns the index after it.
    fn object(&mut self, i: usize, node: u32) -> Result<usize, EventError> {
        self.depth += 1;
        if self.depth > MAX_EVENT_DEPTH {
            return Err(EventError::TooDeep {
                max: MAX_EVENT_DEPTH,
            });
        }
        let b = self.b;
        let mut i = scan::skip_ws(b, i + 1);
        if b.get(i) == Some(&b'}') {
            self.depth -= 1;
            return Ok(i + 1);
        }
        loop {
            if b.get(i) != Some(&b'"') {
                return Err(malformed(i, "a field name"));
            }
            let (kend, kesc) = scan::string_end(b, i + 1).ok_or(malformed(i, "a closing quote"))?;
            let child = self.child(node, &b[i + 1..kend], kesc);
            i = scan::skip_ws(b, kend + 1);
            if b.get(i) != Some(&b':') {
                return Err(malformed(i, "':'"));
            }
            i = scan::skip_ws(b, i + 1);
            i = if child == NONE {
                scan::skip_value(b, i).ok_or(malformed(i, "a value"))?
            } else {
                self.value(i, child)?
            };
            i = scan::skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i = scan::skip_ws(b, i + 1),
                Some(b'}') => {
                    self.depth -= 1;
                    return Ok(i + 1);
                }
                _ => return Err(malformed(i, "',' or '}'")),
            }
        }
    }

    /// The trie child of `node` for an object key (keys containing `.` descend several levels).
    #[inline(always)]
    fn child(&mut self, node: u32, raw: &[u8], escaped: bool) -> u32 {
        let key: &[u8] = if escaped {
            let mut buf = std::mem::take(&mut self.st.key_buf);
            if !scan::unescape(raw, &mut buf) {
                self.st.key_buf = buf;
                return NONE;
            }
            let c = self.child_plain(node, &buf);
            self.st.key_buf = buf;
            return c;
        } else {
            raw
        };
        self.child_plain(node, key)
    }

    #[inline(always)]
    fn child_plain(&self, node: u32, key: &[u8]) -> u32 {
        let n = &self.ix.nodes[node as usize];
        let first = key.first().copied().unwrap_or(0);
        if !n.may_have_first(first) {
            return NONE;
        }
        if n.may_have_len(key.len()) {
            if let Some(&c) = n.children.get(key) {
                return c;
            }
        }
        if key.contains(&b'.') {
            let mut cur = node;
            for seg in key.split(|&c| c == b'.') {
                match self.ix.nodes[cur as usize].children.get(seg) {
                    Some(&c) => cur = c,
                    None => return NONE,
                }
            }
            return cur;
        }
        NONE
    }

    /// Walks the value at `i` for trie node `node`.
    fn value(&mut self, i: usize, node: u32) -> Result<usize, EventError> {
        let b = self.b;
        let n = &self.ix.nodes[node as usize];
        let Some(&c) = b.get(i) else {
            return Err(malformed(i, "a value"));
        };
        match c {
            b'{' => {
                if n.children.is_empty() {
                    scan::skip_container(b, i).ok_or(malformed(i, "a closing '}'"))
                } else {
                    self.object(i, node)
                }
            }
            b'[' => self.array(i, node),
            b'"' => {
                let (end, esc) =
                    scan::string_end(b, i + 1).ok_or(malformed(i, "a closing quote"))?;
                if n.field != NONE {
                    self.leaf_str(n.field, i + 1, end, esc);
                }
                Ok(end + 1)
            }
            _ => {
                let end = scan::scalar_end(b, i);
                if end == i {
                    return Err(malformed(i, "a value"));
                }
                if n.field != NONE {
                    let f = n.field;
                    let text = &b[i..end];
                    match c {
                        b'-' | b'0'..=b'9' => {
                            let preds = &self.ix.fields[f as usize];
                            let mut hits = std::mem::take(&mut self.st.hits);
                            hits.clear();
                            hits.extend_from_slice(&preds.exists);
                            preds.eval_num(text, &mut hits);
                            self.record(f, &hits);
                            self.st.hits = hits;
                        }
                        b't' | b'f' | b'n' => {
                            let expect: &[u8] = match c {
                                b't' => b"true",
                                b'f' => b"false",
                                _ => b"null",
                            };
                            if text != expect {
                                return Err(malformed(i, "true, false or null"));
                            }
                            let preds = &self.ix.fields[f as usize];
                            let mut hits = std::mem::take(&mut self.st.hits);
                            hits.clear();
                            hits.extend_from_slice(&preds.exists);
                            preds.eval_literal(c, &mut hits);
                            self.record(f, &hits);
                            self.st.hits = hits;
                        }
                        _ => return Err(malformed(i, "a value")),
                    }
                }
                Ok(end)
            }
        }
    }

    fn array(&mut self, i: usize, node: u32) -> Result<usize, EventError> {
        let b = self.b;
        let n = &self.ix.nodes[node as usize];
        if n.field == NONE && n.children.is_empty() {
            return scan::skip_container(b, i).ok_or(malformed(i, "a closing ']'"));
        }
        self.depth += 1;
        if self.depth > MAX_EVENT_DEPTH {
            return Err(EventError::TooDeep {
                max: MAX_EVENT_DEPTH,
            });
        }
        let id = self.st.next_array;
        self.st.next_array += 1;
        let mut i = scan::skip_ws(b, i + 1);
        if b.get(i) == Some(&b']') {
            self.depth -= 1;
            return Ok(i + 1);
        }
        let mut idx = 0u32;
        loop {
            self.st.trail.push((id, idx));
            i = self.value(i, node)?;
            self.st.trail.pop();
            i = scan::skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i = scan::skip_ws(b, i + 1),
                Some(b']') => {
                    self.depth -= 1;
                    return Ok(i + 1);
                }
                _ => return Err(malformed(i, "',' or ']'")),
            }
            idx += 1;
        }
    }

    #[inline]
    fn leaf_str(&mut self, f: u32, start: usize, end: usize, escaped: bool) {
        let preds = &self.ix.fields[f as usize];
        let mut hits = std::mem::take(&mut self.st.hits);
        let mut fold = std::mem::take(&mut self.st.fold);
        hits.clear();
        hits.extend_from_slice(&preds.exists);
        if escaped {
            let mut buf = std::mem::take(&mut self.st.buf);
            if scan::unescape(&self.b[start..end], &mut buf) {
                preds.eval_str(&buf, &mut fold, &mut hits);
            }
            self.st.buf = buf;
        } else {
            preds.eval_str(&self.b[start..end], &mut fold, &mut hits);
        }
        self.record(f, &hits);
        self.st.hits = hits;
        self.st.fold = fold;
    }

    /// Records a leaf at field `f` and the slots it hit.
    #[inline]
    fn record(&mut self, f: u32, hits: &[u32]) {
        let st = &mut *self.st;
        if !st.field_seen[f as usize] {
            st.field_seen[f as usize] = true;
            st.touched_fields.push(f);
        }
        for &slot in hits {
            let s = slot as usize;
            let info = self.ix.slots[s];
            if !st.slot_hit[s] {
                st.slot_hit[s] = true;
                st.touched_slots.push(slot);
                if info.required {
                    let b = info.branch as usize;
                    if st.branch_count[b] == 0 {
                        st.touched_branches.push(info.branch);
                    }
                    st.branch_count[b] += 1;
                }
            }
            if info.multi {
                if st.trail.is_empty() {
                    st.slot_free[s] = true;
                } else {
                    let start = st.arena.len() as u32;
                    st.arena.extend_from_slice(&st.trail);
                    st.trail_hits.push((slot, start, st.trail.len() as u32));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_tree_agrees_with_list() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut ix = RangeIndex::default();
        for slot in 0..300u32 {
            let a = (next() % 50) as i64 - 25;
            let b = a + (next() % 10) as i64;
            let lo = if next() % 5 == 0 {
                None
            } else {
                Some((a, next() % 2 == 0))
            };
            let hi = if next() % 5 == 0 {
                None
            } else {
                Some((b, next() % 2 == 0))
            };
            ix.list.push((lo, hi, slot));
        }
        ix.finish();
        assert!(ix.tree.is_some());
        for q in -40..40 {
            let mut got = Vec::new();
            ix.query(q, &mut got);
            got.sort_unstable();
            let mut want: Vec<u32> = ix
                .list
                .iter()
                .filter(|(lo, hi, _)| in_range(q, *lo, *hi))
                .map(|(_, _, s)| *s)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "q = {q}");
        }
    }

    #[test]
    fn affix_index_by_length() {
        let mut ix = AffixIndex::default();
        ix.add(b"ab", 1);
        ix.add(b"abc", 2);
        ix.add(b"", 3);
        ix.add(b"x", 4);
        let mut out = Vec::new();
        ix.prefixes_of(b"abcd", &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![1, 2, 3]);
        out.clear();
        ix.suffixes_of(b"zzx", &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![3, 4]);
    }

    #[test]
    fn many_rules_of_each_kind() {
        // beyond the small-list thresholds: hash maps, affix buckets, range tree
        let mut set = RuleSet::new();
        for i in 0..200 {
            set.add_json(format!("x{i}"), &format!(r#"{{"s": ["v{i}"]}}"#))
                .unwrap();
            set.add_json(
                format!("p{i}"),
                &format!(r#"{{"s": [{{"prefix": "v{i}"}}]}}"#),
            )
            .unwrap();
            set.add_json(
                format!("n{i}"),
                &format!(r#"{{"n": [{{"numeric": [">", {i}, "<=", {}]}}]}}"#, i + 5),
            )
            .unwrap();
        }
        let mut got = set.matches(br#"{"s": "v12", "n": 7}"#).unwrap();
        got.sort_unstable();
        let mut want = vec!["x12", "p1", "p12", "n2", "n3", "n4", "n5", "n6"];
        want.sort_unstable();
        assert_eq!(got, want);
    }
}

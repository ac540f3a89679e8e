//! The processed syntax tree the evaluator walks.

use std::sync::Arc;

use crate::signature::Signature;

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Concat,
    And,
    Or,
    In,
    Range,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Concat => "&",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::In => "in",
            BinOp::Range => "..",
        }
    }
}

/// A stage applied to a step's results: a filter predicate or a positional binding.
#[derive(Debug)]
pub(crate) enum Stage {
    Filter(Box<Node>),
    Index(String),
}

/// One term of an order-by clause.
#[derive(Debug)]
pub(crate) struct SortTerm {
    pub descending: bool,
    pub expr: Node,
}

/// A user-defined function's definition.
#[derive(Debug)]
pub(crate) struct LambdaDef {
    pub params: Vec<String>,
    pub signature: Option<Signature>,
    pub body: Node,
}

/// Expression kinds.
#[derive(Debug)]
pub(crate) enum Kind {
    Path(Vec<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Negate(Box<Node>),
    Array(Vec<Node>),
    Object(Vec<(Node, Node)>),
    Name(String),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Wildcard,
    Descendant,
    Parent(String),
    Condition(Box<Node>, Box<Node>, Option<Box<Node>>),
    Coalesce(Box<Node>, Box<Node>),
    Elvis(Box<Node>, Box<Node>),
    Block(Vec<Node>),
    Bind(String, Box<Node>),
    Regex(Arc<regress::Regex>),
    Call {
        proc: Box<Node>,
        args: Vec<Node>,
        tail: bool,
    },
    Partial {
        proc: Box<Node>,
        args: Vec<Node>,
    },
    Placeholder,
    Variable(String),
    Lambda(Arc<LambdaDef>),
    Apply(Box<Node>, Box<Node>),
    Sort(Vec<SortTerm>),
    Transform(Arc<TransformDef>),
}

/// The parts of a transform expression `| pattern | update, delete |`.
#[derive(Debug)]
pub(crate) struct TransformDef {
    pub pattern: Node,
    pub update: Node,
    pub delete: Option<Node>,
    pub pos: usize,
}

/// A node of the processed tree with the annotations path evaluation needs.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: usize,
    pub keep_array: bool,
    pub predicate: Option<Vec<Stage>>,
    pub stages: Option<Vec<Stage>>,
    pub group: Option<Vec<(Node, Node)>>,
    pub group_pos: usize,
    pub focus: Option<String>,
    pub index: Option<String>,
    pub tuple: bool,
    pub ancestor: Option<String>,
    pub consarray: bool,
    pub keep_singleton_array: bool,
    /// Parse-time only: parent slots this node still seeks.
    pub seeking: Vec<usize>,
    /// Parse-time only: the slot of a `%` node.
    pub slot: Option<usize>,
    /// Parse-time only: the ancestor slot bound on this step.
    pub ancestor_slot: Option<usize>,
}

impl Node {
    pub fn new(kind: Kind, pos: usize) -> Node {
        Node {
            kind,
            pos,
            keep_array: false,
            predicate: None,
            stages: None,
            group: None,
            group_pos: 0,
            focus: None,
            index: None,
            tuple: false,
            ancestor: None,
            consarray: false,
            keep_singleton_array: false,
            seeking: Vec::new(),
            slot: None,
            ancestor_slot: None,
        }
    }

    /// A short description used in error tokens.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Path(_) => "path",
            Kind::Binary(..) => "binary",
            Kind::Negate(_) | Kind::Array(_) | Kind::Object(_) => "unary",
            Kind::Name(_) => "name",
            Kind::Str(_) => "string",
            Kind::Num(_) => "number",
            Kind::Bool(_) | Kind::Null => "value",
            Kind::Wildcard => "wildcard",
            Kind::Descendant => "descendant",
            Kind::Parent(_) => "parent",
            Kind::Condition(..) | Kind::Elvis(..) | Kind::Coalesce(..) => "condition",
            Kind::Block(_) => "block",
            Kind::Bind(..) => "bind",
            Kind::Regex(_) => "regex",
            Kind::Call { .. } => "function",
            Kind::Partial { .. } => "partial",
            Kind::Placeholder => "operator",
            Kind::Variable(_) => "variable",
            Kind::Lambda(_) => "lambda",
            Kind::Apply(..) => "apply",
            Kind::Sort(_) => "sort",
            Kind::Transform(_) => "transform",
        }
    }
}

//! The surface syntax tree. Every node carries the span of the source it came from.
//!
//! The tree is as written: names are unresolved strings, types are unchecked. Expression
//! nesting is bounded (`MAX_EXPR_DEPTH`) by the parser so recursive passes cannot overflow.

use crate::source::Span;

/// Deepest expression tree the parser builds (E0012 beyond).
pub const MAX_EXPR_DEPTH: u32 = 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub items: Vec<Item>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    Data,
    Params,
    Model,
    Generated,
}

impl BlockKind {
    pub fn keyword(self) -> &'static str {
        match self {
            BlockKind::Data => "data",
            BlockKind::Params => "params",
            BlockKind::Model => "model",
            BlockKind::Generated => "generated",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Item {
    Block(Block),
    Func(FuncDef),
    Import(Import),
    /// `name { ... }` where `name` is not a block keyword (reported by the checker, which
    /// still checks the body as the block it most likely meant).
    UnknownBlock {
        name: Ident,
        body: Vec<Stmt>,
        span: Span,
    },
    /// A syntax error the parser recovered from; already reported.
    Error(Span),
}

#[derive(Clone, Debug)]
pub struct Block {
    pub kind: BlockKind,
    /// The keyword.
    pub kw_span: Span,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncKind {
    /// `fn`: pure.
    Fn,
    /// `layer`: owns parameters; int, dist and fn arguments are compile-time values.
    Layer,
}

#[derive(Clone, Debug)]
pub struct FuncDef {
    pub kind: FuncKind,
    pub name: Ident,
    pub args: Vec<ArgDecl>,
    pub ret: TypeExpr,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct ArgDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Import {
    pub path: String,
    pub span: Span,
}

/// A type as written: `real<lower=0>`, `vector[J]`, `array[N] int`, `fn`, `dist`.
#[derive(Clone, Debug)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TypeKind {
    /// `name<bounds>[dims]`; the name is checked later (E0205), so a typo gets a suggestion.
    Named { name: Ident, bounds: Vec<Bound>, dims: Vec<Expr> },
    /// `array[dims] T`
    Array { dims: Vec<Expr>, elem: Box<TypeExpr> },
    /// `fn`: a function value (layer argument).
    Fn,
    /// A missing type after a syntax error (already reported); accepts anything.
    Infer,
}

#[derive(Clone, Debug)]
pub struct Bound {
    /// `lower` or `upper`.
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
    Div,
}

impl AssignOp {
    pub fn symbol(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        }
    }
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    /// `name: type [~ dist]` in `data` and `params`.
    Decl {
        name: Ident,
        ty: TypeExpr,
        prior: Option<Expr>,
    },
    /// `name: type = value` — not bnnc syntax; the checker reports what was meant (a `var`
    /// in `model`, a prior with `~` in `params`) and carries on as if it were written so.
    DeclInit {
        name: Ident,
        ty: TypeExpr,
        init: Expr,
    },
    /// `param name: type [~ dist]` in a `layer`.
    Param {
        name: Ident,
        ty: TypeExpr,
        prior: Option<Expr>,
    },
    /// `let name = expr`
    Let {
        name: Ident,
        value: Expr,
    },
    /// `var name: type [= expr]`
    Var {
        name: Ident,
        ty: TypeExpr,
        init: Option<Expr>,
    },
    /// `lhs = expr`, `lhs += expr`, ...
    Assign {
        lhs: Expr,
        op: AssignOp,
        rhs: Expr,
    },
    /// `expr ~ dist(args)`
    Tilde {
        lhs: Expr,
        dist: Expr,
    },
    /// `target += expr`
    Target {
        value: Expr,
    },
    /// `for var in lo..hi { body }`
    For {
        var: Ident,
        lo: Expr,
        hi: Expr,
        body: Vec<Stmt>,
    },
    /// `if cond { then } else { else_ }`; `else if` nests an `If` in `else_`.
    If {
        cond: Expr,
        then: Vec<Stmt>,
        else_: Option<Vec<Stmt>>,
    },
    Return {
        value: Expr,
    },
    /// A syntax error the parser recovered from; already reported.
    Error,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// Height of this expression tree (a leaf is 1).
    pub depth: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    MatMul,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
            MatMul => "@",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            And => "&&",
            Or => "||",
        }
    }

    /// Binding power, higher binds tighter (used by the printer to place parentheses).
    pub fn precedence(self) -> u8 {
        use BinOp::*;
        match self {
            Or => 2,
            And => 3,
            Eq | Ne => 4,
            Lt | Le | Gt | Ge => 5,
            Add | Sub => 6,
            Mul | Div | Mod | MatMul => 7,
            Pow => 9,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
}

impl UnOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Plus => "+",
            UnOp::Not => "!",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Arg {
    /// `name = value` when given by name.
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub enum Index {
    /// `x[i]`, or a gather `x[idx]` with an int array.
    Single(Expr),
    /// `:`
    All,
    /// `a..b`, `a..`, `..b`
    Range(Option<Expr>, Option<Expr>),
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Real(f64),
    Name(String),
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    Index {
        base: Box<Expr>,
        indices: Vec<Index>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnOp,
        operand: Box<Expr>,
    },
    Cond {
        cond: Box<Expr>,
        then: Box<Expr>,
        else_: Box<Expr>,
    },
    Paren(Box<Expr>),
    /// A recovered syntax error; already reported.
    Error,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        let depth = 1 + kind.children().map(|c| c.depth).max().unwrap_or(0);
        Expr { kind, span, depth }
    }

    pub fn as_name(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Name(n) => Some(n),
            ExprKind::Paren(e) => e.as_name(),
            _ => None,
        }
    }
}

impl ExprKind {
    /// Direct sub-expressions, in source order.
    pub fn children(&self) -> impl Iterator<Item = &Expr> {
        let mut v: Vec<&Expr> = Vec::new();
        match self {
            ExprKind::Int(_) | ExprKind::Real(_) | ExprKind::Name(_) | ExprKind::Error => {}
            ExprKind::Call { args, .. } => v.extend(args.iter().map(|a| &a.value)),
            ExprKind::Index { base, indices } => {
                v.push(base);
                for i in indices {
                    match i {
                        Index::Single(e) => v.push(e),
                        Index::All => {}
                        Index::Range(a, b) => v.extend(a.iter().chain(b.iter())),
                    }
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                v.push(lhs);
                v.push(rhs);
            }
            ExprKind::Unary { operand, .. } => v.push(operand),
            ExprKind::Cond { cond, then, else_ } => {
                v.push(cond);
                v.push(then);
                v.push(else_);
            }
            ExprKind::Paren(e) => v.push(e),
        }
        v.into_iter()
    }
}

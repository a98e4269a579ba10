//! Resolve and check: names, kinds, types and symbolic shapes.
//!
//! Expects a parsed program (the user's items plus imported and standard-library `fn`
//! and `layer` items). Guarantees that a program it reports no error for is well typed:
//! every name resolves, every operation's operand shapes agree wherever they are
//! known symbolically, sizes depend on data only, and no parameter is discrete.
//! Checking records an error and carries on ([`Ty::Error`] unifies with everything), so
//! one run reports every independent mistake. Function and layer bodies are checked once,
//! generically: shape variables and int arguments are symbols.

use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::sema::ty::{Poly, Size, Ty, Variability};
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    Data,
    Param,
    Let,
    Var,
    Loop,
    Arg,
    ShapeVar,
    /// A generated quantity.
    Output,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub ty: Ty,
    pub var: Variability,
    pub kind: BindKind,
    pub span: Span,
    /// For ints known as a polynomial of data sizes (sizes, shape variables, layer ints).
    pub int_val: Option<Poly>,
}

/// The block or body being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Data,
    Params,
    Model,
    Generated,
    Fn,
    Layer,
}

/// A constrained type's transform (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    None,
    Simplex,
    Ordered,
    PositiveOrdered,
    CholeskyCorr,
}

impl Constraint {
    pub fn keyword(self) -> Option<&'static str> {
        match self {
            Constraint::None => None,
            Constraint::Simplex => Some("simplex"),
            Constraint::Ordered => Some("ordered"),
            Constraint::PositiveOrdered => Some("positive_ordered"),
            Constraint::CholeskyCorr => Some("cholesky_corr"),
        }
    }
}

/// A checked type annotation.
#[derive(Clone, Debug)]
pub struct DeclType {
    pub ty: Ty,
    pub constraint: Constraint,
    pub lower: Option<Expr>,
    pub upper: Option<Expr>,
}

/// A `data` or `params` declaration after checking.
#[derive(Clone, Debug)]
pub struct Decl {
    pub name: String,
    pub decl: DeclType,
    /// The type as written (its size and bound expressions are evaluated when data is read).
    pub type_expr: TypeExpr,
    pub prior: Option<Expr>,
    pub span: Span,
    pub name_span: Span,
}

/// The outcome of checking: the pieces later passes need.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub data: Vec<Decl>,
    pub params: Vec<Decl>,
    pub model: Vec<Stmt>,
    pub generated: Vec<Stmt>,
    /// Generated quantities reported per draw, in order.
    pub outputs: Vec<(String, Ty)>,
    pub funcs: HashMap<String, FuncDef>,
}

/// The result of checking an expression.
#[derive(Clone, Debug)]
pub struct Info {
    pub ty: Ty,
    pub var: Variability,
    pub int_val: Option<Poly>,
}

impl Info {
    pub fn new(ty: Ty, var: Variability) -> Info {
        Info { ty, var, int_val: None }
    }

    pub fn error() -> Info {
        Info { ty: Ty::Error, var: Variability::Const, int_val: None }
    }

    pub fn int_const(v: i64) -> Info {
        Info { ty: Ty::Int, var: Variability::Const, int_val: Some(Poly::constant(v)) }
    }
}

pub struct Checker<'a> {
    pub(super) diags: &'a mut Diagnostics,
    pub(super) funcs: &'a HashMap<String, FuncDef>,
    pub(super) scopes: Vec<HashMap<String, Binding>>,
    pub(super) ctx: Ctx,
    pub(super) loop_depth: u32,
    pub(super) runtime_if_depth: u32,
    pub(super) ret_ty: Option<Ty>,
    /// Names declared in `generated` by `name = expr`, in order.
    pub(super) outputs: Vec<(String, Ty)>,
    /// The parameters read outside `generated` (in `model`, or in another parameter's bounds
    /// or prior): one that is not, and has no prior of its own, has an improper posterior.
    pub(super) params_read: std::collections::HashSet<String>,
    /// The names `model` binds with `let` or `var`, where: `generated` does not see them.
    pub(super) model_locals: HashMap<String, Span>,
}

const BLOCK_ORDER: [BlockKind; 4] = [BlockKind::Data, BlockKind::Params, BlockKind::Model, BlockKind::Generated];

/// Check a program. `user_items` are the model file's; `lib_items` come from imports and
/// the standard library (only `fn` and `layer` items are taken from those).
pub fn check_program(user_items: &[Item], lib_items: &[Item], eof: Span, diags: &mut Diagnostics) -> Checked {
    let mut blocks: HashMap<BlockKind, &Block> = HashMap::new();
    let mut funcs: HashMap<String, FuncDef> = HashMap::new();
    let mut unknown_blocks: Vec<Block> = Vec::new();
    for item in lib_items {
        if let Item::Func(f) = item {
            funcs.insert(f.name.name.clone(), f.clone());
        }
    }
    let mut user_funcs: HashMap<String, Span> = HashMap::new();
    for item in user_items {
        match item {
            Item::Block(b) => {
                if let Some(first) = blocks.get(&b.kind) {
                    diags.push(
                        Diagnostic::error(
                            Code::DuplicateBlock,
                            b.kw_span,
                            format!("a second `{}` block", b.kind.keyword()),
                        )
                        .with_label("given again here")
                        .with_secondary(first.kw_span, "first given here")
                        .with_help(format!("merge the two `{}` blocks into one", b.kind.keyword())),
                    );
                } else {
                    blocks.insert(b.kind, b);
                }
            }
            Item::UnknownBlock { name, body, span } => {
                let keywords = BLOCK_ORDER.map(|k| k.keyword());
                // Stan's block names, and close misspellings.
                let guess = match name.name.as_str() {
                    "parameters" => Some("params"),
                    "quantities" | "generated_quantities" | "generated quantities" => Some("generated"),
                    "transformed" | "transformed data" | "transformed parameters" => None,
                    n => crate::diag::suggest(n, keywords.iter().copied()),
                };
                let help = match (name.name.as_str(), guess) {
                    ("transformed" | "transformed data" | "transformed parameters", _) => "bnnc has no transformed blocks: write `let name = ...` in `model` (expressions of data are computed once when the data is read), and constrained parameters with bounds in `params`".to_string(),
                    (_, Some(g)) => format!("did you mean `{g}`?"),
                    (_, None) => "blocks are `data`, `params`, `model` and `generated`".to_string(),
                };
                diags.push(
                    Diagnostic::error(Code::UnexpectedToken, name.span, format!("unknown block `{}`", name.name))
                        .with_label("not a block keyword")
                        .with_help(help),
                );
                // Check the body as the block it most likely meant, so mistakes inside show too.
                if let Some(kind) = guess.and_then(|g| BLOCK_ORDER.iter().find(|k| k.keyword() == g)) {
                    if !blocks.contains_key(kind) {
                        unknown_blocks.push(Block { kind: *kind, kw_span: name.span, body: body.clone(), span: *span });
                    }
                }
            }
            Item::Func(f) => {
                let name = &f.name.name;
                if crate::sema::builtins::is_builtin_function(name)
                    || crate::sema::builtins::distribution(name).is_some()
                    || crate::sema::builtins::dist_function(name).is_some()
                {
                    diags.push(
                        Diagnostic::error(Code::ReservedName, f.name.span, format!("`{name}` is a built-in name"))
                            .with_label("cannot be redefined")
                            .with_help(format!(
                                "give your {} another name",
                                if f.kind == FuncKind::Layer { "layer" } else { "function" }
                            )),
                    );
                    // Calls still resolve to it, so they are not reported again.
                    funcs.insert(name.clone(), f.clone());
                    continue;
                }
                if let Some(first) = user_funcs.get(name) {
                    diags.push(
                        Diagnostic::error(Code::DuplicateDecl, f.name.span, format!("`{name}` is defined twice"))
                            .with_label("defined again here")
                            .with_secondary(*first, "first defined here"),
                    );
                    continue;
                }
                user_funcs.insert(name.clone(), f.name.span);
                // A user definition takes the place of a standard-library one of the same name.
                funcs.insert(name.clone(), f.clone());
            }
            Item::Import(_) | Item::Error(_) => {}
        }
    }
    for b in &unknown_blocks {
        blocks.entry(b.kind).or_insert(b);
    }

    let mut ck = Checker {
        diags,
        funcs: &funcs,
        scopes: vec![HashMap::new()],
        ctx: Ctx::Data,
        loop_depth: 0,
        runtime_if_depth: 0,
        ret_ty: None,
        outputs: Vec::new(),
        params_read: std::collections::HashSet::new(),
        model_locals: HashMap::new(),
    };

    // Function and layer bodies, generically. Standard-library ones are checked too: they
    // are bnnc source like any other.
    let mut names: Vec<&String> = funcs.keys().collect();
    names.sort();
    for n in names {
        ck.check_func(&funcs[n]);
    }

    let mut out = Checked::default();
    if let Some(b) = blocks.get(&BlockKind::Data) {
        ck.ctx = Ctx::Data;
        out.data = ck.check_decl_block(b);
    }
    if let Some(b) = blocks.get(&BlockKind::Params) {
        ck.ctx = Ctx::Params;
        out.params = ck.check_decl_block(b);
    }
    match blocks.get(&BlockKind::Model) {
        Some(b) => {
            ck.ctx = Ctx::Model;
            ck.push_scope();
            ck.check_stmts(&b.body);
            ck.pop_scope();
            out.model = b.body.clone();
        }
        // A syntax error may have swallowed the block: then its absence is not news.
        None if user_items.iter().any(|i| matches!(i, Item::Error(_))) => {}
        None => {
            let empty = user_items.is_empty();
            ck.diags.push(
                Diagnostic::error(
                    Code::MissingModel,
                    eof,
                    if empty { "the file is empty" } else { "no `model` block" },
                )
                .with_label(if empty { "nothing here" } else { "the file ends without a `model` block" })
                .with_help("every model needs a `model { ... }` block, even an empty one"),
            );
        }
    }
    if let Some(b) = blocks.get(&BlockKind::Params) {
        ck.warn_unread_params(b);
    }
    if let Some(b) = blocks.get(&BlockKind::Generated) {
        ck.ctx = Ctx::Generated;
        ck.push_scope();
        ck.check_stmts(&b.body);
        ck.pop_scope();
        out.generated = b.body.clone();
        out.outputs = std::mem::take(&mut ck.outputs);
    }
    out.funcs = funcs.clone();
    out
}

impl<'a> Checker<'a> {
    /// E0207, a warning: a parameter declared without a prior that nothing outside
    /// `generated` reads, on an unbounded support. Its density is flat there, so its
    /// posterior is improper and a sampler drifts off with it. (On a bounded support — both
    /// bounds, a simplex, a correlation factor — flat is a proper uniform.)
    fn warn_unread_params(&mut self, b: &Block) {
        // Only for an otherwise valid program: beside an error it is noise.
        if self.diags.has_errors() {
            return;
        }
        for s in &b.body {
            let StmtKind::Decl { name, ty, prior: None } = &s.kind else { continue };
            if self.params_read.contains(&name.name) || bounded_support(ty) {
                continue;
            }
            self.diags.push(
                Diagnostic::warning(
                    Code::UnreadParameter,
                    name.span,
                    format!("parameter `{}` has no prior and the model never reads it", name.name),
                )
                .with_label("flat on its whole range: its posterior is improper")
                .with_help(format!(
                    "give it a prior (`{}: ... ~ normal(0, 1)`), use it in `model`, or remove it",
                    name.name
                )),
            );
        }
    }

    pub(super) fn push_scope(&mut self) {
        self.scopes.push(HashMap::new());
    }

    pub(super) fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    pub(super) fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    pub(super) fn visible_names(&self) -> Vec<String> {
        self.scopes.iter().flat_map(|s| s.keys().cloned()).collect()
    }

    pub(super) fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Bind a name in the innermost scope; a name already visible is E0102.
    pub(super) fn bind(&mut self, name: &Ident, b: Binding) {
        if let Some(prev) = self.lookup(&name.name) {
            let what = match prev.kind {
                BindKind::Data => "a data variable",
                BindKind::Param => "a parameter",
                BindKind::Loop => "a loop index",
                BindKind::Arg => "an argument",
                BindKind::ShapeVar => "a shape variable",
                _ => "a local",
            };
            let prev_span = prev.span;
            self.error(
                Diagnostic::error(Code::DuplicateDecl, name.span, format!("`{}` is already declared", name.name))
                    .with_label("declared again here")
                    .with_secondary(prev_span, format!("first declared here, as {what}"))
                    .with_help("choose another name"),
            );
            return;
        }
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.name.clone(), b);
        }
    }

    // ---- types ----

    /// Check a size expression: an int known from data (or at compile time).
    pub(super) fn check_size(&mut self, e: &Expr) -> Size {
        let info = self.check_expr(e);
        if info.ty.is_error() {
            return Size::Unknown;
        }
        if info.ty != Ty::Int {
            self.error(
                Diagnostic::error(Code::IntRequired, e.span, format!("a size must be an int, found {}", info.ty))
                    .with_label("not an int"),
            );
            return Size::Unknown;
        }
        if info.var == Variability::Param {
            self.error(
                Diagnostic::error(Code::SizeNotData, e.span, "a size cannot depend on a parameter")
                    .with_label("depends on a parameter")
                    .with_help("sizes must be known when the data is read: use an int from the `data` block"),
            );
            return Size::Unknown;
        }
        Size::from_opt(info.int_val)
    }

    /// Check a type annotation. `shape_vars` collects undefined lower-case size names as
    /// shape variables (function and layer argument types only).
    pub(super) fn check_type(&mut self, t: &TypeExpr, mut shape_vars: Option<&mut Vec<Ident>>) -> DeclType {
        match &t.kind {
            TypeKind::Fn => DeclType { ty: Ty::Func(None), constraint: Constraint::None, lower: None, upper: None },
            TypeKind::Infer => DeclType { ty: Ty::Error, constraint: Constraint::None, lower: None, upper: None },
            TypeKind::Array { dims, elem } => {
                let sizes: Vec<Size> = dims.iter().map(|d| self.check_dim(d, shape_vars.as_deref_mut())).collect();
                let inner = self.check_type(elem, shape_vars);
                if matches!(inner.ty, Ty::Dist(_) | Ty::Func(_)) {
                    self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            elem.span,
                            format!("arrays of `{}` are not supported", inner.ty),
                        )
                        .with_label("element type"),
                    );
                }
                let ty = sizes.into_iter().rev().fold(inner.ty, |t, s| Ty::Array(s, Box::new(t)));
                DeclType { ty, ..inner }
            }
            TypeKind::Named { name, bounds, dims } => {
                let n = name.name.as_str();
                let want_dims: Option<(usize, usize)> = match n {
                    "int" | "real" | "dist" => Some((0, 0)),
                    "vector" | "simplex" | "ordered" | "positive_ordered" | "cholesky_corr" => Some((1, 1)),
                    "matrix" => Some((2, 2)),
                    "tensor" => Some((1, 8)),
                    _ => None,
                };
                let Some((lo, hi)) = want_dims else {
                    let known = [
                        "int",
                        "real",
                        "vector",
                        "matrix",
                        "tensor",
                        "simplex",
                        "ordered",
                        "positive_ordered",
                        "cholesky_corr",
                        "dist",
                    ];
                    let help = match n {
                        "row_vector" => {
                            Some("bnnc has no separate row vectors: use `vector[n]` (or `matrix[1, n]`)".to_string())
                        }
                        "cholesky_factor_corr" => Some("write `cholesky_corr[k]`".to_string()),
                        "float" | "double" | "f64" | "number" => Some("reals are `real`".to_string()),
                        "integer" | "i64" | "long" => Some("integers are `int`".to_string()),
                        _ => did_you_mean(n, known.iter().copied()),
                    };
                    self.error(
                        Diagnostic::error(Code::UnknownType, name.span, format!("unknown type `{n}`"))
                            .with_label("not a type")
                            .with_help_opt(help),
                    );
                    return DeclType { ty: Ty::Error, constraint: Constraint::None, lower: None, upper: None };
                };
                if dims.len() < lo || dims.len() > hi {
                    let want = if lo == hi { format!("{lo}") } else { format!("{lo} to {hi}") };
                    self.error(
                        Diagnostic::error(
                            Code::ArgumentCount,
                            t.span,
                            format!("`{n}` takes {want} size{}, found {}", if hi == 1 { "" } else { "s" }, dims.len()),
                        )
                        .with_label("wrong number of sizes")
                        .with_help_opt(match n {
                            "vector" => Some("write `vector[n]`".to_string()),
                            "matrix" => Some("write `matrix[rows, cols]`".to_string()),
                            "int" | "real" => Some(format!("for an array write `array[n] {n}`")),
                            _ => None,
                        }),
                    );
                }
                let sizes: Vec<Size> = dims.iter().map(|d| self.check_dim(d, shape_vars.as_deref_mut())).collect();
                let s = |i: usize| sizes.get(i).cloned().unwrap_or(Size::Unknown);
                let (ty, constraint) = match n {
                    "int" => (Ty::Int, Constraint::None),
                    "real" => (Ty::Real, Constraint::None),
                    "dist" => (Ty::Dist(None), Constraint::None),
                    "vector" => (Ty::Vector(s(0)), Constraint::None),
                    "simplex" => (Ty::Vector(s(0)), Constraint::Simplex),
                    "ordered" => (Ty::Vector(s(0)), Constraint::Ordered),
                    "positive_ordered" => (Ty::Vector(s(0)), Constraint::PositiveOrdered),
                    "cholesky_corr" => (Ty::Matrix(s(0), s(0)), Constraint::CholeskyCorr),
                    "matrix" => (Ty::Matrix(s(0), s(1)), Constraint::None),
                    _ => (Ty::Tensor(sizes.clone()), Constraint::None),
                };
                let (lower, upper) = self.check_bounds(bounds, n, &ty, constraint);
                DeclType { ty, constraint, lower, upper }
            }
        }
    }

    fn check_dim(&mut self, d: &Expr, shape_vars: Option<&mut Vec<Ident>>) -> Size {
        if let (Some(vars), ExprKind::Name(n)) = (shape_vars, &d.kind) {
            if self.lookup(n).is_none() {
                let lower = n.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if lower {
                    if !vars.iter().any(|v| v.name == *n) {
                        vars.push(Ident { name: n.clone(), span: d.span });
                        if let Some(s) = self.scopes.last_mut() {
                            s.insert(
                                n.clone(),
                                Binding {
                                    ty: Ty::Int,
                                    var: Variability::Data,
                                    kind: BindKind::ShapeVar,
                                    span: d.span,
                                    int_val: Some(Poly::symbol(n)),
                                },
                            );
                        }
                    }
                    return Size::Known(Poly::symbol(n));
                }
                self.error(
                    Diagnostic::error(Code::UnknownName, d.span, format!("unknown size `{n}`"))
                        .with_label("not declared")
                        .with_help("a size in an argument's type is either an earlier int argument or a lower-case shape variable like `n`"),
                );
                // Known (as an error) from here on, so later uses are not reported again.
                if let Some(s) = self.scopes.last_mut() {
                    s.insert(
                        n.clone(),
                        Binding {
                            ty: Ty::Error,
                            var: Variability::Data,
                            kind: BindKind::ShapeVar,
                            span: d.span,
                            int_val: None,
                        },
                    );
                }
                return Size::Unknown;
            }
        }
        self.check_size(d)
    }

    fn check_bounds(
        &mut self,
        bounds: &[Bound],
        type_name: &str,
        ty: &Ty,
        c: Constraint,
    ) -> (Option<Expr>, Option<Expr>) {
        let mut lower = None;
        let mut upper = None;
        for b in bounds {
            let key = b.key.name.as_str();
            let slot = match key {
                "lower" => &mut lower,
                "upper" => &mut upper,
                _ => {
                    self.error(
                        Diagnostic::error(Code::BadBounds, b.key.span, format!("unknown bound `{key}`"))
                            .with_label("not a bound")
                            .with_help(
                                did_you_mean(key, ["lower", "upper"])
                                    .unwrap_or_else(|| "bounds are `lower` and `upper`".into()),
                            ),
                    );
                    continue;
                }
            };
            let allowed = matches!(ty, Ty::Int | Ty::Real | Ty::Vector(_) | Ty::Matrix(..) | Ty::Tensor(_))
                && c == Constraint::None;
            if !allowed {
                self.error(
                    Diagnostic::error(Code::BadBounds, b.span, format!("`{type_name}` cannot have bounds"))
                        .with_label("bound given here")
                        .with_help(match c {
                            Constraint::None => "bounds go on `int`, `real`, `vector` and `matrix`".to_string(),
                            _ => format!("`{type_name}` is already constrained; remove the bound"),
                        }),
                );
                continue;
            }
            if slot.is_some() {
                self.error(
                    Diagnostic::error(Code::BadBounds, b.span, format!("`{key}` given twice"))
                        .with_label("repeated bound"),
                );
                continue;
            }
            let info = self.check_expr(&b.value);
            if !info.ty.is_error() {
                let ok = match (&info.ty, ty) {
                    (t, _) if t.is_scalar() => true,
                    (Ty::Vector(a), Ty::Vector(b)) => !a.differs(b),
                    (Ty::Matrix(..), Ty::Matrix(..)) => {
                        info.ty.dims().iter().zip(ty.dims().iter()).all(|(a, b)| !a.differs(b))
                    }
                    _ => false,
                };
                if !ok {
                    self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            b.value.span,
                            format!("a bound on `{}` must be a scalar or {ty}, found {}", type_name, info.ty),
                        )
                        .with_label("wrong shape for a bound"),
                    );
                }
                if *ty == Ty::Int && info.ty != Ty::Int {
                    self.error(
                        Diagnostic::error(
                            Code::IntRequired,
                            b.value.span,
                            format!("a bound on an int must be an int, found {}", info.ty),
                        )
                        .with_label("not an int"),
                    );
                }
                if self.ctx == Ctx::Data && info.var == Variability::Param {
                    self.error(
                        Diagnostic::error(Code::SizeNotData, b.value.span, "a data bound cannot depend on a parameter")
                            .with_label("depends on a parameter"),
                    );
                }
            }
            *slot = Some(b.value.clone());
        }
        (lower, upper)
    }

    // ---- blocks ----

    fn check_decl_block(&mut self, b: &Block) -> Vec<Decl> {
        let mut out = Vec::new();
        for s in &b.body {
            match &s.kind {
                StmtKind::Decl { name, ty, prior } => {
                    let decl = self.check_type(ty, None);
                    let is_param = self.ctx == Ctx::Params;
                    if matches!(decl.ty, Ty::Dist(_) | Ty::Func(_)) {
                        self.error(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                ty.span,
                                format!("`{}` cannot be {}", name.name, if is_param { "a parameter" } else { "data" }),
                            )
                            .with_label(format!("{} is a compile-time value", decl.ty))
                            .with_help("`dist` and `fn` types are for layer arguments"),
                        );
                    }
                    if is_param && decl.ty.is_int_valued() {
                        self.error(
                            Diagnostic::error(Code::IntParameter, ty.span, format!("parameter `{}` has an int type", name.name))
                                .with_label("parameters must be real-valued")
                                .with_help("samplers move through continuous space: declare it `real` (with bounds), or marginalise a discrete unknown out with `log_mix` or `log_sum_exp`"),
                        );
                    }
                    let var = if is_param { Variability::Param } else { Variability::Data };
                    let int_val = if decl.ty == Ty::Int && !is_param { Some(Poly::symbol(&name.name)) } else { None };
                    self.bind(
                        name,
                        Binding {
                            ty: decl.ty.clone(),
                            var,
                            kind: if is_param { BindKind::Param } else { BindKind::Data },
                            span: name.span,
                            int_val,
                        },
                    );
                    if let Some(p) = prior {
                        if is_param {
                            let lhs = Expr::new(ExprKind::Name(name.name.clone()), name.span);
                            self.check_tilde(&lhs, p, s.span);
                        } else {
                            self.error(
                                Diagnostic::error(
                                    Code::MisplacedStmt,
                                    p.span,
                                    format!("data `{}` cannot have a prior", name.name),
                                )
                                .with_label("prior on data")
                                .with_help(format!(
                                    "to model the data, write `{} ~ ...` in the `model` block",
                                    name.name
                                )),
                            );
                        }
                    }
                    out.push(Decl {
                        name: name.name.clone(),
                        decl,
                        type_expr: ty.clone(),
                        prior: prior.clone(),
                        span: s.span,
                        name_span: name.span,
                    });
                }
                StmtKind::DeclInit { name, ty, init } => {
                    let is_param = self.ctx == Ctx::Params;
                    self.error(
                        Diagnostic::error(
                            Code::MisplacedStmt,
                            init.span,
                            format!("`{}` cannot be given a value here", name.name),
                        )
                        .with_label(if is_param {
                            "a parameter is not assigned"
                        } else {
                            "data come from the data file"
                        })
                        .with_help(if is_param {
                            format!(
                                "give a prior with `~`: `{}: {} ~ normal(0, 1)`",
                                name.name,
                                crate::syntax::print::ty(ty)
                            )
                        } else {
                            "remove the value; compute derived quantities with `let` in `model`".to_string()
                        }),
                    );
                    // Carry on as the declaration it most likely is.
                    let decl = self.check_type(ty, None);
                    let var = if is_param { Variability::Param } else { Variability::Data };
                    let kind = if is_param { BindKind::Param } else { BindKind::Data };
                    let int_val = if decl.ty == Ty::Int && !is_param { Some(Poly::symbol(&name.name)) } else { None };
                    self.bind(name, Binding { ty: decl.ty.clone(), var, kind, span: name.span, int_val });
                    out.push(Decl {
                        name: name.name.clone(),
                        decl,
                        type_expr: ty.clone(),
                        prior: None,
                        span: s.span,
                        name_span: name.span,
                    });
                }
                StmtKind::Error => {}
                _ => {
                    let block = b.kind.keyword();
                    self.error(
                        Diagnostic::error(
                            Code::MisplacedStmt,
                            s.span,
                            format!("only declarations can stand in `{block}`"),
                        )
                        .with_label("not a declaration")
                        .with_help(format!(
                            "declare with `name: type`{}; statements go in `model`",
                            if block == "params" { " [~ prior]" } else { "" }
                        )),
                    );
                }
            }
        }
        out
    }

    fn check_func(&mut self, f: &FuncDef) {
        let saved_ctx = self.ctx;
        let saved_scopes = std::mem::replace(&mut self.scopes, vec![HashMap::new()]);
        self.ctx = if f.kind == FuncKind::Layer { Ctx::Layer } else { Ctx::Fn };
        let mut shape_vars = Vec::new();
        for a in &f.args {
            let t = self.check_type(&a.ty, Some(&mut shape_vars));
            if let Some(d) = &a.default {
                let info = self.check_expr(d);
                self.expect_assignable(&t.ty, &info, d.span, "default value");
            }
            // Int, dist and fn arguments of layers are compile-time values.
            let var = match (&t.ty, f.kind) {
                (Ty::Int, FuncKind::Layer) | (Ty::Dist(_), _) | (Ty::Func(_), _) => Variability::Const,
                _ => Variability::Data,
            };
            let int_val = if t.ty == Ty::Int { Some(Poly::symbol(&a.name.name)) } else { None };
            self.bind(&a.name, Binding { ty: t.ty, var, kind: BindKind::Arg, span: a.name.span, int_val });
        }
        let ret = self.check_type(&f.ret, None);
        self.ret_ty = Some(ret.ty.clone());
        self.push_scope();
        self.check_stmts(&f.body);
        self.pop_scope();
        if !always_returns(&f.body) {
            let end = Span { lo: f.span.hi.saturating_sub(1), ..f.span };
            self.error(
                Diagnostic::error(
                    Code::MissingReturn,
                    end,
                    format!("`{}` can reach its end without returning a value", f.name.name),
                )
                .with_label("no `return` before here")
                .with_secondary(f.ret.span, format!("declared to return {}", ret.ty))
                .with_help("end every path with `return expr`"),
            );
        }
        self.ret_ty = None;
        self.scopes = saved_scopes;
        self.ctx = saved_ctx;
    }

    // ---- statements ----

    pub(super) fn check_stmts(&mut self, body: &[Stmt]) {
        for s in body {
            self.check_stmt(s);
        }
    }

    fn misplaced(&mut self, span: Span, what: &str, help: &str) {
        let place = match self.ctx {
            Ctx::Data => "the `data` block",
            Ctx::Params => "the `params` block",
            Ctx::Model => "the `model` block",
            Ctx::Generated => "the `generated` block",
            Ctx::Fn => "a `fn`",
            Ctx::Layer => "a `layer`",
        };
        self.error(
            Diagnostic::error(Code::MisplacedStmt, span, format!("{what} is not allowed in {place}"))
                .with_label("not allowed here")
                .with_help(help),
        );
    }

    pub(super) fn check_stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Error => {}
            StmtKind::Decl { name, .. } => {
                let help = match self.ctx {
                    Ctx::Layer => format!(
                        "declare a layer parameter with `param {}: type ~ prior`, or a local with `var`",
                        name.name
                    ),
                    _ => format!(
                        "declare a local with `var {}: type` or `let {} = ...`; parameters go in `params`",
                        name.name, name.name
                    ),
                };
                self.misplaced(s.span, "a declaration without `var`", &help);
            }
            StmtKind::DeclInit { name, ty, init } => {
                let t = crate::syntax::print::ty(ty);
                self.error(
                    Diagnostic::error(
                        Code::MisplacedStmt,
                        s.span,
                        format!("a local is declared with `var`: `var {}: {t} = ...`", name.name),
                    )
                    .with_label("missing `var`")
                    .with_help(format!(
                        "write `var {}: {t} = {}` (or `let {} = ...` if it never changes)",
                        name.name,
                        crate::syntax::print::expr(init),
                        name.name
                    )),
                );
                let var = Stmt {
                    kind: StmtKind::Var { name: name.clone(), ty: ty.clone(), init: Some(init.clone()) },
                    span: s.span,
                };
                self.check_stmt(&var);
            }
            StmtKind::Param { name, ty, prior } => {
                if self.ctx != Ctx::Layer {
                    self.misplaced(
                        s.span,
                        "`param`",
                        "`param` declares a parameter owned by a layer; model parameters go in the `params` block",
                    );
                    // Known from here on, so its uses are not reported too.
                    let t = self.check_type(ty, None);
                    self.bind_param(name, t.ty);
                    return;
                }
                if self.loop_depth > 0 || self.runtime_if_depth > 0 {
                    self.error(
                        Diagnostic::error(Code::LayerInFn, s.span, "a `param` inside a loop or a runtime `if`")
                            .with_label("the number of parameters would depend on data")
                            .with_help("parameters are made once per layer call; use recursion on an int argument for repetition"),
                    );
                }
                let t = self.check_type(ty, None);
                if t.ty.is_int_valued() {
                    self.error(
                        Diagnostic::error(
                            Code::IntParameter,
                            ty.span,
                            format!("parameter `{}` has an int type", name.name),
                        )
                        .with_label("parameters must be real-valued"),
                    );
                }
                self.bind_param(name, t.ty);
                if let Some(p) = prior {
                    let lhs = Expr::new(ExprKind::Name(name.name.clone()), name.span);
                    self.check_tilde(&lhs, p, s.span);
                }
            }
            StmtKind::Let { name, value } => {
                if self.ctx == Ctx::Model {
                    self.model_locals.insert(name.name.clone(), name.span);
                }
                let info = self.check_expr(value);
                if matches!(info.ty, Ty::Dist(_)) && !matches!(self.ctx, Ctx::Layer | Ctx::Fn) {
                    // A distribution bound by `let` can only be used on the right of `~`.
                }
                self.bind(
                    name,
                    Binding { ty: info.ty, var: info.var, kind: BindKind::Let, span: name.span, int_val: info.int_val },
                );
            }
            StmtKind::Var { name, ty, init } => {
                if self.ctx == Ctx::Model {
                    self.model_locals.insert(name.name.clone(), name.span);
                }
                let t = self.check_type(ty, None);
                if !t.ty.is_numeric() {
                    self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            ty.span,
                            format!("a `var` cannot hold {}", t.ty.kind_word()),
                        )
                        .with_label("not a numeric type"),
                    );
                }
                if t.lower.is_some() || t.upper.is_some() || t.constraint != Constraint::None {
                    self.error(
                        Diagnostic::error(Code::BadBounds, ty.span, "a local variable cannot be constrained")
                            .with_label("bounds and constrained types are for data and parameters")
                            .with_help("remove the bounds"),
                    );
                }
                let mut var = Variability::Data;
                if let Some(e) = init {
                    let info = self.check_expr(e);
                    self.expect_fill_or_assignable(&t.ty, &info, e.span, "initial value");
                    var = var.max(info.var);
                }
                // A mutable local may later be assigned anything: in the model block, treat it
                // as depending on parameters unless it is only ever data (not tracked yet).
                if matches!(self.ctx, Ctx::Model | Ctx::Layer | Ctx::Generated) {
                    var = Variability::Param;
                }
                let kind = if self.ctx == Ctx::Generated && self.scopes.len() == 2 && self.loop_depth == 0 {
                    BindKind::Output
                } else {
                    BindKind::Var
                };
                if kind == BindKind::Output {
                    self.outputs.push((name.name.clone(), t.ty.clone()));
                }
                self.bind(name, Binding { ty: t.ty, var, kind, span: name.span, int_val: None });
            }
            StmtKind::Assign { lhs, op, rhs } => self.check_assign(lhs, *op, rhs, s.span),
            StmtKind::Tilde { lhs, dist } => {
                match self.ctx {
                    Ctx::Model | Ctx::Layer => {}
                    Ctx::Generated => {
                        self.misplaced(
                            s.span,
                            "`~`",
                            "in `generated`, draw with `_rng` functions: `y_rep = normal_rng(mu, sigma)`",
                        );
                        return;
                    }
                    _ => {
                        self.misplaced(s.span, "`~`", "a `fn` is pure: return the log density with `_lpdf` functions and add it with `target +=` in `model`");
                        return;
                    }
                }
                self.check_tilde(lhs, dist, s.span);
            }
            StmtKind::Target { value } => {
                if !matches!(self.ctx, Ctx::Model | Ctx::Layer) {
                    self.misplaced(s.span, "`target +=`", "add to the log density only in `model` (or a layer)");
                    return;
                }
                let info = self.check_expr(value);
                self.require_number(&info, value.span, "`target +=` needs a number", |d| {
                    format!("for the log density use `{d}_lpdf(x, ...)`, or write `x ~ {d}(...)`")
                });
            }
            StmtKind::For { var, lo, hi, body } => {
                for e in [lo, hi] {
                    let info = self.check_expr(e);
                    if info.ty.is_error() {
                        continue;
                    }
                    if info.ty != Ty::Int {
                        self.error(
                            Diagnostic::error(
                                Code::IntRequired,
                                e.span,
                                format!("loop bounds must be ints, found {}", info.ty),
                            )
                            .with_label("not an int"),
                        );
                    } else if info.var == Variability::Param {
                        self.error(
                            Diagnostic::error(Code::SizeNotData, e.span, "a loop bound cannot depend on a parameter")
                                .with_label("depends on a parameter"),
                        );
                    }
                }
                self.push_scope();
                self.loop_depth += 1;
                self.bind(
                    var,
                    Binding {
                        ty: Ty::Int,
                        var: Variability::Data,
                        kind: BindKind::Loop,
                        span: var.span,
                        int_val: None,
                    },
                );
                self.check_stmts(body);
                self.loop_depth -= 1;
                self.pop_scope();
            }
            StmtKind::If { cond, then, else_ } => {
                let info = self.check_expr(cond);
                if !info.ty.is_error() && info.ty != Ty::Int {
                    self.error(
                        Diagnostic::error(
                            Code::IntRequired,
                            cond.span,
                            format!("a condition must be an int (0 is false), found {}", info.ty),
                        )
                        .with_label("not an int")
                        .with_help_opt(if info.ty == Ty::Real {
                            Some("compare it, as in `x > 0`".to_string())
                        } else {
                            None
                        }),
                    );
                }
                if info.var == Variability::Param && matches!(self.ctx, Ctx::Model | Ctx::Layer) {
                    self.error(
                        Diagnostic::error(Code::ConditionOnParameter, cond.span, "`if` on a value that depends on a parameter")
                            .with_label("depends on a parameter")
                            .with_help("the log density must be smooth in the parameters: branch on data, or use `c ? a : b` / `log_mix` for a mixture"),
                    );
                }
                let runtime = info.var != Variability::Const;
                if runtime {
                    self.runtime_if_depth += 1;
                }
                self.push_scope();
                self.check_stmts(then);
                self.pop_scope();
                if let Some(e) = else_ {
                    self.push_scope();
                    self.check_stmts(e);
                    self.pop_scope();
                }
                if runtime {
                    self.runtime_if_depth -= 1;
                }
            }
            StmtKind::Return { value } => {
                let info = self.check_expr(value);
                match self.ret_ty.clone() {
                    Some(t) => self.expect_assignable(&t, &info, value.span, "returned value"),
                    None => self.misplaced(s.span, "`return`", "`return` ends a `fn` or `layer`"),
                }
                if self.loop_depth > 0 {
                    self.error(
                        Diagnostic::error(Code::MisplacedStmt, s.span, "`return` inside a loop")
                            .with_label("not allowed in a loop")
                            .with_help("collect the result in a `var` and return it after the loop"),
                    );
                }
            }
        }
    }

    fn check_assign(&mut self, lhs: &Expr, op: AssignOp, rhs: &Expr, span: Span) {
        let rinfo = self.check_expr(rhs);
        // The assigned name: `x` or the base of `x[i]...`.
        let mut base = lhs;
        while let ExprKind::Index { base: b, .. } = &base.kind {
            base = b;
        }
        let Some(name) = base.as_name().map(str::to_string) else {
            self.error(
                Diagnostic::error(Code::NotAssignable, lhs.span, "cannot assign to this expression")
                    .with_label("not a variable")
                    .with_help("assign to a `var` or an element of one: `x = ...`, `x[i] = ...`"),
            );
            return;
        };
        let binding = self.lookup(&name).cloned();
        match binding {
            None if self.ctx == Ctx::Generated && op == AssignOp::Set && std::ptr::eq(base, lhs) => {
                // `name = expr` in `generated` declares an output.
                self.require_number(&rinfo, rhs.span, "a generated quantity must be a number", |d| {
                    format!("to draw from it, call `{d}_rng(...)`")
                });
                let id = Ident { name: name.clone(), span: base.span };
                if self.loop_depth > 0 || self.scopes.len() > 2 {
                    self.error(
                        Diagnostic::error(
                            Code::MisplacedStmt,
                            span,
                            format!("generated quantity `{name}` first assigned inside a block"),
                        )
                        .with_label("declare it at the top of `generated`")
                        .with_help(format!("declare `var {name}: type` before the loop, then assign its elements")),
                    );
                }
                self.outputs.push((name.clone(), rinfo.ty.to_real_if_numeric()));
                self.bind(
                    &id,
                    Binding { ty: rinfo.ty, var: rinfo.var, kind: BindKind::Output, span: base.span, int_val: None },
                );
            }
            None => {
                let visible = self.visible_names();
                self.error(
                    Diagnostic::error(Code::UnknownName, base.span, format!("unknown name `{name}`"))
                        .with_label("not declared")
                        .with_help(
                            did_you_mean(&name, visible.iter().map(String::as_str))
                                .unwrap_or_else(|| format!("declare it first: `var {name}: type`")),
                        ),
                );
            }
            Some(b) => {
                if !matches!(b.kind, BindKind::Var | BindKind::Output) {
                    let what = match b.kind {
                        BindKind::Data => "data",
                        BindKind::Param => "a parameter",
                        BindKind::Let => "bound by `let`, which is immutable",
                        BindKind::Loop => "a loop index",
                        BindKind::Arg => "an argument",
                        _ => "not a variable",
                    };
                    self.error(
                        Diagnostic::error(
                            Code::NotAssignable,
                            base.span,
                            format!("cannot assign to `{name}`: it is {what}"),
                        )
                        .with_label("not assignable")
                        .with_secondary(b.span, "declared here")
                        .with_help(if b.kind == BindKind::Let {
                            format!("declare it with `var {name}: type` to change it")
                        } else {
                            "assign to a `var` instead".to_string()
                        }),
                    );
                    return;
                }
                let linfo = self.check_expr(lhs);
                if op != AssignOp::Set {
                    let bop = match op {
                        AssignOp::Add => BinOp::Add,
                        AssignOp::Sub => BinOp::Sub,
                        AssignOp::Mul => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    let r = self.binary(bop, &linfo, &rinfo, lhs.span, rhs.span, span);
                    self.expect_assignable(&linfo.ty, &r, rhs.span, "assigned value");
                } else {
                    self.expect_fill_or_assignable(&linfo.ty, &rinfo, rhs.span, "assigned value");
                }
            }
        }
    }

    /// Bind a layer parameter (`param name: type`).
    fn bind_param(&mut self, name: &Ident, ty: Ty) {
        self.bind(name, Binding { ty, var: Variability::Param, kind: BindKind::Param, span: name.span, int_val: None });
    }

    /// Report (E0302) a value that is not a number where one is needed (`what`: "`target +=`
    /// needs a number"); `dist_help` says what to write instead when it is a distribution.
    fn require_number(&mut self, info: &Info, span: Span, what: &str, dist_help: impl Fn(&str) -> String) {
        if info.ty.is_error() || info.ty.is_numeric() {
            return;
        }
        self.error(
            Diagnostic::error(Code::WrongKind, span, format!("{what}, found {}", info.ty.kind_word()))
                .with_label(format!("this is {}", info.ty))
                .with_help_opt(match &info.ty {
                    Ty::Dist(Some(d)) => Some(dist_help(d)),
                    _ => None,
                }),
        );
    }

    /// As [`Self::expect_assignable`], but a scalar may fill a whole container (SPEC §4:
    /// scalars broadcast), as in `var acc: vector[N] = 0`.
    pub(super) fn expect_fill_or_assignable(&mut self, expected: &Ty, actual: &Info, span: Span, what: &str) {
        let fills = actual.ty.is_scalar()
            && expected.is_numeric()
            && !expected.dims().is_empty()
            && (actual.ty == Ty::Int || !expected.is_int_valued());
        if !fills {
            self.expect_assignable(expected, actual, span, what);
        }
    }

    /// `expected` ← `actual`: ints promote to reals, shapes must agree where known.
    pub(super) fn expect_assignable(&mut self, expected: &Ty, actual: &Info, span: Span, what: &str) {
        let a = &actual.ty;
        if expected.is_error() || a.is_error() {
            return;
        }
        let ok_kind = match (expected, a) {
            (Ty::Dist(_), Ty::Dist(_)) | (Ty::Func(_), Ty::Func(_)) => true,
            (Ty::Dist(_) | Ty::Func(_), _) | (_, Ty::Dist(_) | Ty::Func(_)) => {
                self.error(
                    Diagnostic::error(
                        Code::WrongKind,
                        span,
                        format!("{what}: expected {}, found {}", expected.kind_word(), a.kind_word()),
                    )
                    .with_label(format!("this is {a}"))
                    .with_help_opt(match a {
                        Ty::Dist(Some(d)) => {
                            Some(format!("`{d}(...)` is a distribution; for a draw use `{d}_rng(...)`"))
                        }
                        _ => None,
                    }),
                );
                return;
            }
            (Ty::Int, Ty::Int) => true,
            (Ty::Int, _) => {
                self.error(
                    Diagnostic::error(Code::IntRequired, span, format!("{what}: expected an int, found {a}"))
                        .with_label("a real cannot become an int")
                        .with_help("ints are not rounded implicitly"),
                );
                return;
            }
            (Ty::Array(_, e), _) if e.is_int_valued() && !a.is_int_valued() => {
                self.error(
                    Diagnostic::error(Code::IntRequired, span, format!("{what}: expected {expected}, found {a}"))
                        .with_label("reals cannot become ints"),
                );
                return;
            }
            (Ty::Real, t) => t.is_scalar(),
            (Ty::Vector(_), t) => t.dims().len() == 1 && !matches!(t, Ty::Tensor(_)),
            (Ty::Matrix(..), t) => matches!(t, Ty::Matrix(..)) || (matches!(t, Ty::Array(..)) && t.dims().len() == 2),
            (Ty::Tensor(d), t) => t.dims().len() == d.len(),
            (Ty::Array(..), t) => t.dims().len() == expected.dims().len(),
            (Ty::Error, _) => true,
        };
        if !ok_kind {
            self.error(
                Diagnostic::error(Code::TypeMismatch, span, format!("{what}: expected {expected}, found {a}"))
                    .with_label(format!("this is {a}")),
            );
            return;
        }
        for (x, y) in expected.dims().iter().zip(a.dims().iter()) {
            if x.differs(y) {
                self.error(
                    Diagnostic::error(Code::ShapeMismatch, span, format!("{what}: expected {expected}, found {a}"))
                        .with_label(format!("size {y} where {x} is expected")),
                );
                return;
            }
        }
    }
}

impl Ty {
    fn to_real_if_numeric(&self) -> Ty {
        if self.is_numeric() && !self.is_int_valued() {
            self.to_real()
        } else {
            self.clone()
        }
    }
}

/// Every path through `body` ends in `return`.
pub fn always_returns(body: &[Stmt]) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Return { .. } => true,
        StmtKind::If { then, else_: Some(e), .. } => always_returns(then) && always_returns(e),
        StmtKind::Error => true,
        _ => false,
    })
}

/// Whether a parameter type's support is bounded (so a flat density on it is proper): both
/// bounds given, or a simplex or correlation factor, or an array of these.
fn bounded_support(ty: &TypeExpr) -> bool {
    match &ty.kind {
        TypeKind::Named { name, bounds, .. } => {
            matches!(name.name.as_str(), "simplex" | "cholesky_corr")
                || ["lower", "upper"].iter().all(|k| bounds.iter().any(|b| b.key.name == *k))
        }
        TypeKind::Array { elem, .. } => bounded_support(elem),
        TypeKind::Fn | TypeKind::Infer => true,
    }
}

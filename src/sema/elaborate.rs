//! Elaboration: every `layer` call inlined, compile-time ints folded, `if`s on compile-time
//! conditions resolved (which is how fractal recursion ends), parameters named by path.
//!
//! Expects a program that checked without errors. Produces a flat program — `data`,
//! `params` (the model's own and every layer's, with shapes in terms of data sizes),
//! `model` and `generated` — in which no layer call remains, and re-checks it, so what it
//! returns is well typed. `fn` calls stay calls (they are pure and need no naming).
//!
//! Naming (SPEC §3): a layer call bound by `let h = ...` makes parameters `h.W`; any other
//! call is named after the layer, with a 0-based ordinal when the same layer is called more
//! than once in one body; nested calls are joined by dots: `f.fractal.1.dense.W`.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::sema::check::{check_program, BindKind, Binding, Checked, Checker, Ctx};
use crate::sema::ty::{Poly, Size, Ty, Variability};
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::HashMap;

/// Nested layer calls deeper than this are a recursion that does not end (E0400).
pub const MAX_LAYER_DEPTH: usize = 64;
/// Layer instances one model may expand to (a fractal of depth 20 would need a million).
pub const MAX_INSTANCES: usize = 20_000;

/// The flat program and its check.
#[derive(Debug, Clone)]
pub struct Elaborated {
    /// The flat program as items (a `data`, `params`, `model`, `generated` block and the `fn`s).
    pub items: Vec<Item>,
    pub checked: Checked,
    /// Bounds of layer arguments whose values come from the data, checked once it is read.
    pub deferred_bounds: Vec<DeferredBound>,
}

/// A layer's `int` argument bound (`units: int<lower=1>`) whose value, or limit, is a
/// polynomial in the data's integers: E0403 when the data puts it outside.
#[derive(Clone, Debug)]
pub struct DeferredBound {
    pub value: Poly,
    pub limit: Poly,
    /// An upper bound (else a lower one).
    pub upper: bool,
    pub layer: String,
    pub arg: String,
    pub value_span: Span,
    pub bound_span: Span,
}

impl DeferredBound {
    /// E0403 when the value is outside the bound for these data integers (none for a bound
    /// known at compile time); `None` when it is inside or a symbol has no value.
    pub fn check(&self, int: impl Fn(&str) -> Option<i64>) -> Option<Diagnostic> {
        let mut map = HashMap::new();
        for name in self.value.symbols().into_iter().chain(self.limit.symbols()) {
            map.insert(name.clone(), Poly::constant(int(&name)?));
        }
        let v = self.value.subst(&map)?.as_const()?;
        let limit = self.limit.subst(&map)?.as_const()?;
        let inside = if self.upper { v <= limit } else { v >= limit };
        if inside {
            return None;
        }
        let (layer, arg) = (&self.layer, &self.arg);
        let (side, key) = if self.upper { ("above its upper", "upper") } else { ("below its lower", "lower") };
        Some(
            Diagnostic::error(
                Code::LayerArgOutOfRange,
                self.value_span,
                format!("`{layer}`'s argument `{arg}` is {v}, {side} bound {limit}"),
            )
            .with_label(format!("`{arg}` is {v} here"))
            .with_secondary(self.bound_span, format!("`{key}` bound of `{arg}`")),
        )
    }
}

struct Elab<'a> {
    funcs: &'a HashMap<String, FuncDef>,
    /// Types the flat program's names: data, parameters made so far, locals emitted so far.
    ck: Checker<'a>,
    diags: &'a mut Diagnostics,
    params: Vec<Stmt>,
    /// Call chain for E0400: (layer, argument summary, span).
    chain: Vec<(String, String, Span)>,
    instances: usize,
    failed: bool,
    used_names: std::collections::HashSet<String>,
    /// Layer argument bounds to check once the data is read.
    deferred: Vec<DeferredBound>,
}

/// Renaming in one body: a source name → the expression that replaces it.
type Env = Vec<HashMap<String, Expr>>;

fn lookup<'e>(env: &'e Env, n: &str) -> Option<&'e Expr> {
    env.iter().rev().find_map(|s| s.get(n))
}

fn name_expr(n: &str, span: Span) -> Expr {
    Expr::new(ExprKind::Name(n.to_string()), span)
}

/// A polynomial of data sizes as an expression.
fn poly_expr(p: &Poly, span: Span) -> Expr {
    let s = p.to_string();
    let mut d = Diagnostics::new();
    crate::syntax::parse::parse_expr(span.file, &s, &mut d)
        .map(|mut e| {
            respan(&mut e, span);
            e
        })
        .unwrap_or_else(|| Expr::new(ExprKind::Error, span))
}

fn respan(e: &mut Expr, span: Span) {
    e.span = span;
    match &mut e.kind {
        ExprKind::Binary { lhs, rhs, .. } => {
            respan(lhs, span);
            respan(rhs, span);
        }
        ExprKind::Unary { operand, .. } => respan(operand, span),
        ExprKind::Paren(x) => respan(x, span),
        _ => {}
    }
}

pub fn elaborate(checked: &Checked, diags: &mut Diagnostics) -> Option<Elaborated> {
    let funcs = &checked.funcs;
    let mut scratch = Diagnostics::new();
    let ck = Checker {
        diags: &mut scratch,
        funcs,
        scopes: vec![HashMap::new()],
        ctx: Ctx::Model,
        loop_depth: 0,
        runtime_if_depth: 0,
        ret_ty: None,
        outputs: Vec::new(),
        params_read: Default::default(),
        model_locals: Default::default(),
    };
    let mut el = Elab {
        funcs,
        ck,
        diags,
        params: Vec::new(),
        chain: Vec::new(),
        instances: 0,
        failed: false,
        used_names: Default::default(),
        deferred: Vec::new(),
    };
    for d in &checked.data {
        el.declare(&d.name, d.decl.ty.clone(), Variability::Data, BindKind::Data, d.name_span);
    }
    let mut params_stmts = Vec::new();
    for p in &checked.params {
        el.declare(&p.name, p.decl.ty.clone(), Variability::Param, BindKind::Param, p.name_span);
        params_stmts.push(decl_stmt(&p.name, p.name_span, p.type_expr.clone(), p.prior.clone(), p.span));
    }
    let mut env: Env = vec![HashMap::new()];
    let mut model = Vec::new();
    el.ck.push_scope();
    let body = el.fold(&checked.model, &mut env);
    el.elab_body(&body, "", &mut env, &mut model);
    el.ck.pop_scope();
    if el.failed {
        return None;
    }
    params_stmts.extend(el.params.drain(..));
    let deferred_bounds = std::mem::take(&mut el.deferred);
    let span0 = checked.model.first().map(|s| s.span).unwrap_or_default();
    let block = |kind, body: Vec<Stmt>| Item::Block(Block { kind, kw_span: span0, body, span: span0 });
    let mut items = Vec::new();
    for f in funcs.values() {
        if f.kind == FuncKind::Fn {
            items.push(Item::Func(f.clone()));
        }
    }
    let data_stmts: Vec<Stmt> =
        checked.data.iter().map(|d| decl_stmt(&d.name, d.name_span, d.type_expr.clone(), None, d.span)).collect();
    items.push(block(BlockKind::Data, data_stmts));
    items.push(block(BlockKind::Params, params_stmts));
    items.push(block(BlockKind::Model, model));
    if !checked.generated.is_empty() {
        items.push(block(BlockKind::Generated, checked.generated.clone()));
    }
    // Re-check the flat program: a concrete instantiation can fail where the generic body
    // could not tell (a discrete prior passed to a layer, for one).
    let before = diags.error_count();
    let flat = check_program(&items, &[], span0, diags);
    if std::env::var_os("BNNC_DEBUG_ELAB").is_some() {
        eprintln!("{}", crate::syntax::print::program(&Program { items: items.clone() }));
    }
    if diags.error_count() > before {
        return None;
    }
    Some(Elaborated { items, checked: flat, deferred_bounds })
}

fn decl_stmt(name: &str, name_span: Span, ty: TypeExpr, prior: Option<Expr>, span: Span) -> Stmt {
    Stmt { kind: StmtKind::Decl { name: Ident { name: name.to_string(), span: name_span }, ty, prior }, span }
}

impl<'a> Elab<'a> {
    fn declare(&mut self, name: &str, ty: Ty, var: Variability, kind: BindKind, span: Span) {
        self.used_names.insert(name.to_string());
        let int_val = if ty == Ty::Int && kind == BindKind::Data { Some(Poly::symbol(name)) } else { None };
        // Parameters are global, wherever the layer that makes them is expanded.
        let scope = if kind == BindKind::Param { self.ck.scopes.first_mut() } else { self.ck.scopes.last_mut() };
        if let Some(s) = scope {
            s.insert(name.to_string(), Binding { ty, var, kind, span, int_val });
        }
    }

    /// A flat name not used yet, from `want`.
    fn fresh(&mut self, want: &str) -> String {
        if !self.used_names.contains(want) {
            self.used_names.insert(want.to_string());
            return want.to_string();
        }
        let mut k = 1;
        loop {
            let n = format!("{want}_{k}");
            if !self.used_names.contains(&n) {
                self.used_names.insert(n.clone());
                return n;
            }
            k += 1;
        }
    }

    fn is_layer(&self, name: &str, env: &Env) -> bool {
        lookup(env, name).is_none() && self.funcs.get(name).is_some_and(|f| f.kind == FuncKind::Layer)
    }

    /// Resolve `if`s whose condition is known at compile time and drop what follows a
    /// `return` that always runs.
    fn fold(&mut self, body: &[Stmt], env: &mut Env) -> Vec<Stmt> {
        let mut out = Vec::new();
        for s in body {
            match &s.kind {
                StmtKind::If { cond, then, else_ } => {
                    let c = self.subst(cond, env);
                    let info = self.ck.check_expr(&c);
                    match info.int_val.as_ref().and_then(Poly::as_const) {
                        Some(v) => {
                            let chosen: &[Stmt] = if v != 0 { then } else { else_.as_deref().unwrap_or(&[]) };
                            let folded = self.fold(chosen, env);
                            let returns = crate::sema::check::always_returns(&folded);
                            out.extend(folded);
                            if returns {
                                return out;
                            }
                        }
                        None => {
                            let then = self.fold(then, env);
                            let else_ = else_.as_ref().map(|e| self.fold(e, env));
                            out.push(Stmt { kind: StmtKind::If { cond: cond.clone(), then, else_ }, span: s.span });
                        }
                    }
                }
                StmtKind::Return { .. } => {
                    out.push(s.clone());
                    return out;
                }
                _ => out.push(s.clone()),
            }
        }
        out
    }

    /// Rename without inlining (for conditions and types, which hold no layer calls).
    fn subst(&mut self, e: &Expr, env: &Env) -> Expr {
        let mut sink = Vec::new();
        self.expr(e, env, "", &mut HashMap::new(), &mut sink)
    }

    /// Elaborate a body at `prefix` into `out`; returns the value of its `return`, if any.
    fn elab_body(&mut self, body: &[Stmt], prefix: &str, env: &mut Env, out: &mut Vec<Stmt>) -> Option<Expr> {
        // Ordinals: layers called more than once (other than directly under `let`) are numbered.
        let mut counts: HashMap<String, usize> = HashMap::new();
        for s in body {
            count_unnamed_calls(s, &|n| self.is_layer(n, env), &mut counts);
        }
        let mut ordinals: HashMap<String, (usize, usize)> = counts.into_iter().map(|(k, v)| (k, (0, v))).collect();
        for s in body {
            if self.failed {
                return None;
            }
            if let Some(r) = self.elab_stmt(s, prefix, env, out, &mut ordinals) {
                return Some(r);
            }
        }
        None
    }

    fn path(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }

    fn elab_stmt(
        &mut self,
        s: &Stmt,
        prefix: &str,
        env: &mut Env,
        out: &mut Vec<Stmt>,
        ord: &mut HashMap<String, (usize, usize)>,
    ) -> Option<Expr> {
        let span = s.span;
        match &s.kind {
            StmtKind::Let { name, value } => {
                let path = Self::path(prefix, &name.name);
                let flat = match &value.kind {
                    ExprKind::Call { callee, args } if self.is_layer(&callee.name, env) => {
                        let r = self.inline_call(callee, args, prefix, Some(&path), env, ord, out, value.span);
                        match r.kind {
                            // The call emitted `let path = ...` itself.
                            ExprKind::Name(ref n) if *n == path => {
                                env.last_mut().map(|m| m.insert(name.name.clone(), r.clone()));
                                return None;
                            }
                            _ => r,
                        }
                    }
                    _ => self.expr(value, env, prefix, ord, out),
                };
                let flat_name = self.fresh(&path);
                self.emit_let(&flat_name, name.span, flat, span, out);
                env.last_mut().map(|m| m.insert(name.name.clone(), name_expr(&flat_name, name.span)));
                None
            }
            StmtKind::Var { name, ty, init } => {
                let flat_name = self.fresh(&Self::path(prefix, &name.name));
                let ty = self.elab_type(ty, env);
                let init = init.as_ref().map(|e| self.expr(e, env, prefix, ord, out));
                let t = self.ck.check_type(&ty, None);
                self.declare(&flat_name, t.ty, Variability::Param, BindKind::Var, name.span);
                env.last_mut().map(|m| m.insert(name.name.clone(), name_expr(&flat_name, name.span)));
                out.push(Stmt {
                    kind: StmtKind::Var { name: Ident { name: flat_name, span: name.span }, ty, init },
                    span,
                });
                None
            }
            StmtKind::Param { name, ty, prior } => {
                let path = self.fresh(&Self::path(prefix, &name.name));
                let ty = self.elab_type(ty, env);
                let prior = prior.as_ref().map(|p| self.expr(p, env, prefix, ord, out));
                let t = self.ck.check_type(&ty, None);
                self.declare(&path, t.ty, Variability::Param, BindKind::Param, name.span);
                env.last_mut().map(|m| m.insert(name.name.clone(), name_expr(&path, name.span)));
                self.params.push(decl_stmt(&path, name.span, ty, prior, span));
                None
            }
            StmtKind::Return { value } => Some(self.expr(value, env, prefix, ord, out)),
            StmtKind::Assign { lhs, op, rhs } => {
                let rhs = self.expr(rhs, env, prefix, ord, out);
                let lhs = self.expr(lhs, env, prefix, ord, out);
                out.push(Stmt { kind: StmtKind::Assign { lhs, op: *op, rhs }, span });
                None
            }
            StmtKind::Tilde { lhs, dist } => {
                let lhs = self.expr(lhs, env, prefix, ord, out);
                let dist = self.expr(dist, env, prefix, ord, out);
                out.push(Stmt { kind: StmtKind::Tilde { lhs, dist }, span });
                None
            }
            StmtKind::Target { value } => {
                let value = self.expr(value, env, prefix, ord, out);
                out.push(Stmt { kind: StmtKind::Target { value }, span });
                None
            }
            StmtKind::For { var, lo, hi, body } => {
                let lo = self.expr(lo, env, prefix, ord, out);
                let hi = self.expr(hi, env, prefix, ord, out);
                let flat_var = self.fresh(&Self::path(prefix, &var.name));
                env.push(HashMap::new());
                env.last_mut().map(|m| m.insert(var.name.clone(), name_expr(&flat_var, var.span)));
                self.ck.push_scope();
                self.declare(&flat_var, Ty::Int, Variability::Data, BindKind::Loop, var.span);
                let mut inner = Vec::new();
                self.elab_body(body, prefix, env, &mut inner);
                self.ck.pop_scope();
                env.pop();
                out.push(Stmt {
                    kind: StmtKind::For { var: Ident { name: flat_var, span: var.span }, lo, hi, body: inner },
                    span,
                });
                None
            }
            StmtKind::If { cond, then, else_ } => {
                if !prefix.is_empty() && (has_return(then) || else_.as_ref().is_some_and(|e| has_return(e))) {
                    self.failed = true;
                    let (layer, args, call) = self.chain.first().cloned().unwrap_or_default();
                    self.diags.push(
                        Diagnostic::error(Code::NotConstant, call, format!("`{layer}` cannot be expanded: its result depends on a value known only when data is read"))
                            .with_label(format!("called with {args}"))
                            .with_secondary(cond.span, "this condition must be known at compile time")
                            .with_help("pass a literal for the int arguments that decide the layer's structure (its recursion depth, say); an int from data can set sizes only"),
                    );
                    return None;
                }
                let cond = self.expr(cond, env, prefix, ord, out);
                let branch = |el: &mut Self, b: &[Stmt], env: &mut Env| {
                    env.push(HashMap::new());
                    el.ck.push_scope();
                    let mut v = Vec::new();
                    el.elab_body(b, prefix, env, &mut v);
                    el.ck.pop_scope();
                    env.pop();
                    v
                };
                let then = branch(self, then, env);
                let else_ = else_.as_ref().map(|e| branch(self, e, env));
                out.push(Stmt { kind: StmtKind::If { cond, then, else_ }, span });
                None
            }
            StmtKind::Decl { .. } | StmtKind::DeclInit { .. } | StmtKind::Error => None,
        }
    }

    fn emit_let(&mut self, name: &str, name_span: Span, value: Expr, span: Span, out: &mut Vec<Stmt>) {
        let info = self.ck.check_expr(&value);
        if let Some(s) = self.ck.scopes.last_mut() {
            s.insert(
                name.to_string(),
                Binding { ty: info.ty, var: info.var, kind: BindKind::Let, span: name_span, int_val: info.int_val },
            );
        }
        self.used_names.insert(name.to_string());
        out.push(Stmt { kind: StmtKind::Let { name: Ident { name: name.to_string(), span: name_span }, value }, span });
    }

    fn elab_type(&mut self, t: &TypeExpr, env: &Env) -> TypeExpr {
        let kind = match &t.kind {
            TypeKind::Fn => TypeKind::Fn,
            TypeKind::Infer => TypeKind::Infer,
            TypeKind::Array { dims, elem } => TypeKind::Array {
                dims: dims.iter().map(|d| self.subst(d, env)).collect(),
                elem: Box::new(self.elab_type(elem, env)),
            },
            TypeKind::Named { name, bounds, dims } => TypeKind::Named {
                name: name.clone(),
                bounds: bounds
                    .iter()
                    .map(|b| Bound { key: b.key.clone(), value: self.subst(&b.value, env), span: b.span })
                    .collect(),
                dims: dims.iter().map(|d| self.subst(d, env)).collect(),
            },
        };
        TypeExpr { kind, span: t.span }
    }

    /// Rebuild an expression in the flat program: names renamed, layer calls inlined (their
    /// statements go to `out`), calls through `fn` arguments resolved.
    fn expr(
        &mut self,
        e: &Expr,
        env: &Env,
        prefix: &str,
        ord: &mut HashMap<String, (usize, usize)>,
        out: &mut Vec<Stmt>,
    ) -> Expr {
        let span = e.span;
        let kind = match &e.kind {
            ExprKind::Name(n) => match lookup(env, n) {
                Some(r) => return r.clone(),
                None => ExprKind::Name(n.clone()),
            },
            ExprKind::Call { callee, args } => {
                if self.is_layer(&callee.name, env) {
                    return self.inline_call(callee, args, prefix, None, env, ord, out, span);
                }
                let args: Vec<Arg> = args
                    .iter()
                    .map(|a| Arg { name: a.name.clone(), value: self.expr(&a.value, env, prefix, ord, out) })
                    .collect();
                // A call through a `fn` argument calls the function it was given.
                match lookup(env, &callee.name).map(|r| r.kind.clone()) {
                    Some(ExprKind::Name(f)) if f == "identity" && args.len() == 1 => {
                        return args
                            .into_iter()
                            .next()
                            .map(|a| a.value)
                            .unwrap_or_else(|| Expr::new(ExprKind::Error, span))
                    }
                    Some(ExprKind::Name(f)) => ExprKind::Call { callee: Ident { name: f, span: callee.span }, args },
                    _ => ExprKind::Call { callee: callee.clone(), args },
                }
            }
            ExprKind::Index { base, indices } => {
                let base = Box::new(self.expr(base, env, prefix, ord, out));
                let indices = indices
                    .iter()
                    .map(|i| match i {
                        Index::Single(x) => Index::Single(self.expr(x, env, prefix, ord, out)),
                        Index::All => Index::All,
                        Index::Range(a, b) => Index::Range(
                            a.as_ref().map(|x| self.expr(x, env, prefix, ord, out)),
                            b.as_ref().map(|x| self.expr(x, env, prefix, ord, out)),
                        ),
                    })
                    .collect();
                ExprKind::Index { base, indices }
            }
            ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
                op: *op,
                lhs: Box::new(self.expr(lhs, env, prefix, ord, out)),
                rhs: Box::new(self.expr(rhs, env, prefix, ord, out)),
            },
            ExprKind::Unary { op, operand } => {
                ExprKind::Unary { op: *op, operand: Box::new(self.expr(operand, env, prefix, ord, out)) }
            }
            ExprKind::Cond { cond, then, else_ } => ExprKind::Cond {
                cond: Box::new(self.expr(cond, env, prefix, ord, out)),
                then: Box::new(self.expr(then, env, prefix, ord, out)),
                else_: Box::new(self.expr(else_, env, prefix, ord, out)),
            },
            ExprKind::Paren(x) => ExprKind::Paren(Box::new(self.expr(x, env, prefix, ord, out))),
            other => other.clone(),
        };
        Expr::new(kind, span)
    }

    /// Inline one layer call. `named` is the path given by a `let`; otherwise the call is
    /// named after the layer, numbered in evaluation order (its arguments, which may hold
    /// layer calls of their own, come first). Emits its statements and `let path = result`
    /// into `out`, and returns the expression standing for the result.
    #[allow(clippy::too_many_arguments)]
    fn inline_call(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        caller_prefix: &str,
        named: Option<&str>,
        env: &Env,
        ord: &mut HashMap<String, (usize, usize)>,
        out: &mut Vec<Stmt>,
        span: Span,
    ) -> Expr {
        let err = Expr::new(ExprKind::Error, span);
        let Some(f) = self.funcs.get(&callee.name) else {
            return err;
        };
        // Arguments, in the caller's scope.
        let mut actual: Vec<Option<Expr>> = vec![None; f.args.len()];
        let mut next = 0;
        for a in args {
            let v = self.expr(&a.value, env, caller_prefix, ord, out);
            let pos = match &a.name {
                Some(n) => f.args.iter().position(|d| d.name.name == n.name),
                None => {
                    next += 1;
                    Some(next - 1)
                }
            };
            if let Some(p) = pos.filter(|p| *p < actual.len()) {
                actual[p] = Some(v);
            }
        }
        let path = match named {
            Some(p) => p.to_string(),
            None => {
                let (k, total) = ord.get(&callee.name).copied().unwrap_or((0, 1));
                ord.insert(callee.name.clone(), (k + 1, total));
                let local = if total > 1 { format!("{}.{k}", callee.name) } else { callee.name.clone() };
                Self::path(caller_prefix, &local)
            }
        };
        let path = path.as_str();
        // The layer's own scope: arguments, shape variables.
        let mut inner: Env = vec![HashMap::new()];
        for (i, d) in f.args.iter().enumerate() {
            let value = match &actual[i] {
                Some(v) => v.clone(),
                None => match &d.default {
                    Some(def) => self.subst(def, &inner),
                    None => return err,
                },
            };
            let info = self.ck.check_expr(&value);
            if !self.within_bounds(f, d, &value, info.int_val.as_ref(), &inner) {
                return err;
            }
            // Shape variables from the argument's type.
            if let TypeKind::Named { dims, .. } | TypeKind::Array { dims, .. } = &d.ty.kind {
                for (k, dim) in dims.iter().enumerate() {
                    if let ExprKind::Name(sv) = &dim.kind {
                        if lookup(&inner, sv).is_none() && !f.args.iter().any(|a| a.name.name == *sv) {
                            let have = info.ty.dims();
                            let e = match have.get(k) {
                                Some(Size::Known(p)) => poly_expr(p, dim.span),
                                _ => {
                                    // Read off the value when the data is read: only a value of
                                    // the data, and a dimension a size function names, can be.
                                    let sizes = sizes_params(&f.body, sv);
                                    let size_fn = match (k, info.ty.dims().len()) {
                                        (0, 1) => Some("size"),
                                        (0, _) => Some("rows"),
                                        (1, 2) => Some("cols"),
                                        // No size function names it; the layer's parameters
                                        // do not use it.
                                        _ if !sizes => Some("cols"),
                                        _ => None,
                                    };
                                    let readable = info.var <= Variability::Data || !sizes;
                                    let Some(size_fn) = size_fn.filter(|_| readable) else {
                                        self.failed = true;
                                        // The argument has no type, or a size the checker
                                        // could not work out: what made it so is the error
                                        // to report (a function applied to the wrong shape,
                                        // a convolution with a negative padding).
                                        // (Or it was reported already: a recursion
                                        // that does not end.)
                                        let found: Vec<Diagnostic> = self.ck.diags.items().to_vec();
                                        if info.ty.is_error() || !found.is_empty() {
                                            found.into_iter().for_each(|d| self.diags.push(d));
                                            if self.diags.has_errors() {
                                                return err;
                                            }
                                        }
                                        self.diags.push(
                                            Diagnostic::error(
                                                Code::SizeNotData,
                                                value.span,
                                                format!(
                                                    "the size `{sv}` of `{}`'s argument `{}` is not known before the model runs",
                                                    f.name.name, d.name.name
                                                ),
                                            )
                                            .with_label(format!("this is {}", info.ty))
                                            .with_help("the layer's parameters are sized by it: give the data's sizes as numbers in its declaration (`x: tensor[N, 1, 8, 8]`), from which each layer's output size follows"),
                                        );
                                        return err;
                                    };
                                    Expr::new(
                                        ExprKind::Call {
                                            callee: Ident { name: size_fn.to_string(), span: dim.span },
                                            args: vec![Arg { name: None, value: value.clone() }],
                                        },
                                        dim.span,
                                    )
                                }
                            };
                            inner[0].insert(sv.clone(), e);
                        }
                    }
                }
            }
            let bound = match (&d.ty.kind, &info.int_val) {
                // Ints known as polynomials of data sizes are folded.
                (TypeKind::Named { name, .. }, Some(p)) if name.name == "int" => poly_expr(p, value.span),
                // Runtime values other than plain names are computed once.
                (TypeKind::Named { name, .. }, _)
                    if !matches!(name.name.as_str(), "int" | "dist") && !is_simple(&value) =>
                {
                    let n = self.fresh(&format!("{path}.{}", d.name.name));
                    self.emit_let(&n, d.name.span, value, span, out);
                    name_expr(&n, d.name.span)
                }
                _ => value,
            };
            inner[0].insert(d.name.name.clone(), bound);
        }
        self.instances += 1;
        let summary: Vec<String> = f
            .args
            .iter()
            .filter(|d| matches!(&d.ty.kind, TypeKind::Named { name, .. } if name.name == "int"))
            .filter_map(|d| {
                inner[0].get(&d.name.name).map(|v| format!("{} = {}", d.name.name, crate::syntax::print::expr(v)))
            })
            .collect();
        self.chain.push((f.name.name.clone(), summary.join(", "), span));
        if self.chain.len() > MAX_LAYER_DEPTH || self.instances > MAX_INSTANCES {
            self.report_recursion(f);
            self.chain.pop();
            return err;
        }
        // The layer's statements land in the caller's `out`, so names they bind are typed in
        // the caller's scope too.
        let body = self.fold(&f.body, &mut inner);
        let result = self.elab_body(&body, path, &mut inner, out);
        self.chain.pop();
        let Some(result) = result else { return err };
        if is_simple(&result) {
            return result;
        }
        let n = self.fresh(path);
        self.emit_let(&n, callee.span, result, span, out);
        name_expr(&n, callee.span)
    }

    /// Whether an `int` argument lies within the bounds its layer declares for it (`units:
    /// int<lower=1>`), reporting E0403 at the value when not, where both are known at compile
    /// time; where either depends on the data's integers, the check is kept for when they
    /// are read.
    fn within_bounds(&mut self, f: &FuncDef, d: &ArgDecl, value: &Expr, int_val: Option<&Poly>, inner: &Env) -> bool {
        let TypeKind::Named { name, bounds, .. } = &d.ty.kind else { return true };
        let Some(v) = int_val.filter(|_| name.name == "int") else { return true };
        for b in bounds {
            let upper = match b.key.name.as_str() {
                "lower" => false,
                "upper" => true,
                _ => continue,
            };
            let bound = self.subst(&b.value, inner);
            let Some(limit) = self.ck.check_expr(&bound).int_val else { continue };
            let check = DeferredBound {
                value: v.clone(),
                limit,
                upper,
                layer: f.name.name.clone(),
                arg: d.name.name.clone(),
                value_span: value.span,
                bound_span: b.span,
            };
            if !(check.value.symbols().is_empty() && check.limit.symbols().is_empty()) {
                self.deferred.push(check);
            } else if let Some(diag) = check.check(|_| None) {
                self.failed = true;
                self.diags.push(diag);
                return false;
            }
        }
        true
    }

    fn report_recursion(&mut self, last: &FuncDef) {
        if self.failed {
            return;
        }
        self.failed = true;
        // The layer the user called, which is the one that recurses (the last expanded may
        // be a helper such as `dense`).
        let f = self.chain.first().and_then(|(n, _, _)| self.funcs.get(n)).unwrap_or(last);
        let too_many = self.instances > MAX_INSTANCES;
        let first = self.chain.first().map(|c| c.2).unwrap_or(f.name.span);
        let mut d = Diagnostic::error(
            Code::RecursionLimit,
            first,
            if too_many {
                format!("layer expansion exceeds {MAX_INSTANCES} layer calls")
            } else {
                format!("layer recursion does not end within {MAX_LAYER_DEPTH} nested calls")
            },
        )
        .with_label("expanding this call")
        .with_secondary(f.name.span, format!("`{}` is defined here", f.name.name));
        let shown: Vec<String> = self.chain.iter().take(6).map(|(n, a, _)| format!("{n}({a})")).collect();
        let mut chain = shown.join(" → ");
        if self.chain.len() > 6 {
            chain.push_str(&format!(" → ... ({} calls)", self.chain.len()));
        }
        d = d.with_note(format!("call chain: {chain}"));
        d = d.with_help(if too_many {
            "lower the recursion depth: each level of a fractal doubles its size".to_string()
        } else {
            "make the recursion reach its base case: an `if` on an int argument that decreases at each call".to_string()
        });
        self.diags.push(d);
    }
}

fn is_simple(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Name(_) | ExprKind::Int(_) | ExprKind::Real(_))
}

fn has_return(body: &[Stmt]) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Return { .. } => true,
        StmtKind::If { then, else_, .. } => has_return(then) || else_.as_ref().is_some_and(|e| has_return(e)),
        StmtKind::For { body, .. } => has_return(body),
        _ => false,
    })
}

/// Count layer calls that are not the direct value of a `let` (those are named by the `let`).
fn count_unnamed_calls(s: &Stmt, is_layer: &dyn Fn(&str) -> bool, counts: &mut HashMap<String, usize>) {
    fn walk(e: &Expr, is_layer: &dyn Fn(&str) -> bool, counts: &mut HashMap<String, usize>, named: bool) {
        if let ExprKind::Call { callee, .. } = &e.kind {
            if is_layer(&callee.name) && !named {
                *counts.entry(callee.name.clone()).or_insert(0) += 1;
            }
        }
        for c in e.kind.children() {
            walk(c, is_layer, counts, false);
        }
    }
    match &s.kind {
        StmtKind::Let { value, .. } => walk(value, is_layer, counts, true),
        StmtKind::Var { init: Some(e), .. } | StmtKind::Return { value: e } | StmtKind::Target { value: e } => {
            walk(e, is_layer, counts, false)
        }
        StmtKind::Assign { lhs, rhs, .. } => {
            walk(lhs, is_layer, counts, false);
            walk(rhs, is_layer, counts, false);
        }
        StmtKind::Tilde { lhs, dist } => {
            walk(lhs, is_layer, counts, false);
            walk(dist, is_layer, counts, false);
        }
        StmtKind::Param { prior: Some(p), .. } => walk(p, is_layer, counts, false),
        _ => {}
    }
}

/// Whether `name` appears in the type of a `param` of `body` (a layer's parameters are
/// declared before the model runs, so their sizes must be known by then).
fn sizes_params(body: &[Stmt], name: &str) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Param { ty, .. } => {
            crate::syntax::print::ty(ty).split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == name)
        }
        StmtKind::If { then, else_, .. } => {
            sizes_params(then, name) || else_.as_ref().is_some_and(|e| sizes_params(e, name))
        }
        StmtKind::For { body, .. } => sizes_params(body, name),
        _ => false,
    })
}

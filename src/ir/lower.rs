//! Lowering: the elaborated program and its bound data → an IR [`Program`].
//!
//! Expects a program that checked and elaborated without errors, and data bound to it.
//! Guarantees a program whose every value has a concrete shape, in which data are constants,
//! every computation that depends on data alone has been done once here (constant folding),
//! `fn` calls are inlined, and each parameter is produced once by a `Constrain` from the
//! unconstrained vector. Shape mismatches that only numbers reveal are E0600.

use crate::data::{eval_int, type_dims, BoundData, Values};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::interp::Failed;
use crate::ir::prim::{self, Bin, Ix, Red, Un};
use crate::ir::{BlockId, Inst, Output, ParamLayout, Prim, Program, Slot, SlotInfo, ValueInfo, ENTRY, V};
use crate::math::dist::Family;
use crate::math::transform::Kind;
use crate::sema::builtins::Func;
use crate::sema::check::{Constraint, Decl};
use crate::sema::elaborate::Elaborated;
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::{BTreeMap, HashMap};

/// What a name stands for.
#[derive(Clone, Debug)]
enum Bound {
    Value(V),
    Slot(Slot),
}

/// The most values [`Lower::possible`] keeps for one int (a loop of more iterations is not
/// checked before it runs).
const POSSIBLE_MAX: usize = 1 << 20;

/// An int known as `c + Σ coef·loop_index` (enough to give slices a static length).
#[derive(Clone, Debug, PartialEq)]
struct Affine {
    c: i64,
    terms: BTreeMap<V, i64>,
}

impl Affine {
    fn constant(c: i64) -> Affine {
        Affine { c, terms: BTreeMap::new() }
    }

    fn combine(&self, o: &Affine, sign: i64) -> Option<Affine> {
        let mut r = self.clone();
        r.c = r.c.checked_add(o.c.checked_mul(sign)?)?;
        for (k, v) in &o.terms {
            let e = r.terms.entry(*k).or_insert(0);
            *e = e.checked_add(v.checked_mul(sign)?)?;
            if *e == 0 {
                r.terms.remove(k);
            }
        }
        Some(r)
    }

    fn scale(&self, k: i64) -> Option<Affine> {
        let mut r = Affine { c: self.c.checked_mul(k)?, terms: BTreeMap::new() };
        for (v, c) in &self.terms {
            if k != 0 {
                r.terms.insert(*v, c.checked_mul(k)?);
            }
        }
        Some(r)
    }

    fn as_const(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.c)
    }
}

/// The names of the data variables that are observed: the roots of left-hand sides of `~`
/// in `model` (`y` for `y ~ ...` and `y[i] ~ ...`), and of the first argument of a density
/// added with `target += normal_lpdf(y, ...)`, that are declared as data.
pub fn observed_names(el: &Elaborated) -> Vec<String> {
    use crate::syntax::ast::{ExprKind, Stmt, StmtKind};
    fn walk(stmts: &[Stmt], data: &[String], out: &mut Vec<String>) {
        for s in stmts {
            let observed = match &s.kind {
                StmtKind::Tilde { lhs, .. } => Some(lhs),
                StmtKind::Target { value } => match &value.kind {
                    ExprKind::Call { callee, args }
                        if callee.name.ends_with("_lpdf") || callee.name.ends_with("_lpmf") =>
                    {
                        args.first().map(|a| &a.value)
                    }
                    _ => None,
                },
                _ => None,
            };
            match &s.kind {
                StmtKind::Tilde { .. } | StmtKind::Target { .. } => {
                    let Some(lhs) = observed else { continue };
                    let root = match &lhs.kind {
                        ExprKind::Index { base, .. } => base.as_name(),
                        _ => lhs.as_name(),
                    };
                    if let Some(n) = root {
                        if data.iter().any(|d| d == n) && !out.iter().any(|o| o == n) {
                            out.push(n.to_string());
                        }
                    }
                }
                StmtKind::For { body, .. } => walk(body, data, out),
                StmtKind::If { then, else_, .. } => {
                    walk(then, data, out);
                    if let Some(e) = else_ {
                        walk(e, data, out);
                    }
                }
                _ => {}
            }
        }
    }
    let data: Vec<String> = el.checked.data.iter().map(|d| d.name.clone()).collect();
    let mut out = Vec::new();
    walk(&el.checked.model, &data, &mut out);
    out
}

/// The data variables that are the variates of densities inside a `target +=` that is not
/// itself one density (a mixture's `log_sum_exp` or `log_mix` of densities, a density plus a
/// constant), or of a log CDF (a censored observation's `weibull_lccdf(t[n] | ...)`):
/// observed, though not by one distribution [`predict`](crate::predict) could draw.
pub fn mixture_observed(el: &Elaborated) -> Vec<String> {
    use crate::syntax::ast::{Stmt, StmtKind};
    fn nested(e: &Expr, top: bool, data: &[&str], out: &mut Vec<String>) {
        if let ExprKind::Call { callee, args } = &e.kind {
            let n = callee.name.as_str();
            let density = n.ends_with("_lpdf") || n.ends_with("_lpmf");
            if !top && density || n.ends_with("_lcdf") || n.ends_with("_lccdf") {
                let root = args.first().and_then(|a| match &a.value.kind {
                    ExprKind::Index { base, .. } => base.as_name(),
                    _ => a.value.as_name(),
                });
                if let Some(r) = root.filter(|r| data.contains(r) && !out.iter().any(|o| o == r)) {
                    out.push(r.to_string());
                }
            }
        }
        e.kind.children().for_each(|c| nested(c, false, data, out));
    }
    fn targets(stmts: &[Stmt], data: &[&str], out: &mut Vec<String>) {
        for s in stmts {
            match &s.kind {
                StmtKind::Target { value } => nested(value, true, data, out),
                StmtKind::For { body, .. } => targets(body, data, out),
                StmtKind::If { then, else_, .. } => {
                    targets(then, data, out);
                    targets(else_.as_deref().unwrap_or(&[]), data, out);
                }
                _ => {}
            }
        }
    }
    let data: Vec<&str> = el.checked.data.iter().map(|d| d.name.as_str()).collect();
    let mut out = Vec::new();
    targets(&el.checked.model, &data, &mut out);
    out
}

/// Whether every observed element's likelihood is one distribution the forward entry shows
/// (no [`mixture_observed`] data).
pub fn likelihood_in_sites(el: &Elaborated) -> bool {
    mixture_observed(el).is_empty()
}

/// The data behind the observations, for finding the rows: the observed data variables, and
/// for an observed `let` computed from data alone (`let log_earn = log(earn)` then
/// `log_earn ~ ...`), the data it is computed from.
fn observed_data(el: &Elaborated) -> Vec<String> {
    let mut out = observed_names(el);
    for name in mixture_observed(el) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    for (_, from) in observed_lets(el) {
        for d in from {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// Each `let` of the model made from data alone, with the data variables it reads.
fn data_lets(el: &Elaborated) -> HashMap<String, Vec<String>> {
    use crate::syntax::ast::{Stmt, StmtKind};
    let data: Vec<&str> = el.checked.data.iter().map(|d| d.name.as_str()).collect();
    fn names(e: &Expr, out: &mut Vec<String>) {
        if let ExprKind::Name(n) = &e.kind {
            out.push(n.clone());
        }
        e.kind.children().for_each(|c| names(c, out));
    }
    let mut lets: HashMap<String, Vec<String>> = HashMap::new();
    fn walk(stmts: &[Stmt], data: &[&str], lets: &mut HashMap<String, Vec<String>>) {
        for s in stmts {
            match &s.kind {
                StmtKind::Let { name, value } => {
                    let mut read = Vec::new();
                    names(value, &mut read);
                    let mut from = Vec::new();
                    let only_data = read.iter().all(|n| {
                        if data.contains(&n.as_str()) {
                            from.push(n.clone());
                            true
                        } else if let Some(d) = lets.get(n) {
                            from.extend(d.iter().cloned());
                            true
                        } else {
                            false
                        }
                    });
                    if only_data && !from.is_empty() {
                        lets.insert(name.name.clone(), from);
                    }
                }
                StmtKind::For { body, .. } => walk(body, data, lets),
                _ => {}
            }
        }
    }
    walk(&el.checked.model, &data, &mut lets);
    lets
}

/// The observed `let`s computed from data alone (`let log_earn = log(earn)`, then
/// `log_earn ~ ...`), each with the data variables it is computed from.
pub fn observed_lets(el: &Elaborated) -> Vec<(String, Vec<String>)> {
    use crate::syntax::ast::{Stmt, StmtKind};
    let lets = data_lets(el);
    let mut roots = Vec::new();
    fn roots_of(stmts: &[Stmt], out: &mut Vec<String>) {
        for s in stmts {
            match &s.kind {
                StmtKind::Tilde { lhs, .. } => {
                    let root = match &lhs.kind {
                        ExprKind::Index { base, .. } => base.as_name(),
                        _ => lhs.as_name(),
                    };
                    out.extend(root.map(str::to_string));
                }
                StmtKind::For { body, .. } => roots_of(body, out),
                StmtKind::If { then, else_, .. } => {
                    roots_of(then, out);
                    roots_of(else_.as_deref().unwrap_or(&[]), out);
                }
                _ => {}
            }
        }
    }
    roots_of(&el.checked.model, &mut roots);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in roots {
        if let Some(from) = lets.get(&r) {
            if !out.iter().any(|(n, _)| *n == r) {
                out.push((r, from.clone()));
            }
        }
    }
    out
}

/// The int data whose value is the number of observation rows (`N` in `y: vector[N]`), when
/// every observed variable's first dimension is that one name.
pub fn row_size(el: &Elaborated) -> Option<String> {
    let observed = observed_data(el);
    let sizes: Vec<Option<String>> = observed
        .iter()
        .map(|name| {
            let d = el.checked.data.iter().find(|d| d.name == *name)?;
            let (dims, _) = type_dims(&d.type_expr);
            dims.first()?.as_name().map(str::to_string)
        })
        .collect();
    match sizes.first() {
        Some(Some(n)) if sizes.iter().all(|s| s.as_deref() == Some(n.as_str())) => Some(n.clone()),
        _ => None,
    }
}

/// The model's observation rows: the data variables whose first dimension is the size that
/// indexes the rows of every observed variable (`N` in `y: vector[N]`, so also `x: matrix[N,
/// D]`). When the observed variables do not share such a size (a scalar observation, sizes
/// that differ), the observed variables themselves.
pub fn row_variables(el: &Elaborated) -> Vec<String> {
    let observed = observed_data(el);
    let first_dim = |name: &str| -> Option<String> {
        let d = el.checked.data.iter().find(|d| d.name == name)?;
        let (dims, _) = type_dims(&d.type_expr);
        dims.first()?.as_name().map(str::to_string)
    };
    let sizes: Vec<Option<String>> = observed.iter().map(|n| first_dim(n)).collect();
    match sizes.first() {
        Some(Some(n)) if sizes.iter().all(|s| s.as_deref() == Some(n.as_str())) => el
            .checked
            .data
            .iter()
            .filter(|d| first_dim(&d.name).as_deref() == Some(n.as_str()))
            .map(|d| d.name.clone())
            .collect(),
        _ => observed,
    }
}

/// What to do instead of minibatching.
const FULL_BATCH_HELP: &str =
    "minibatches need a likelihood that is a sum of one term per observation row; fit on the full data instead (--method advi, or nuts)";

/// Why a model without observation rows ([`row_size`]) cannot be minibatched.
pub fn no_rows_diagnostic(el: &Elaborated) -> Diagnostic {
    let mut observed = observed_names(el);
    observed.extend(mixture_observed(el).into_iter().filter(|m| !observed.contains(m)).collect::<Vec<_>>());
    let why = if observed.is_empty() {
        "this model's observation rows cannot be found: no data variable is observed (on the left of `~`, or as the first argument of a density in `target +=`)".to_string()
    } else {
        format!(
            "this model's observation rows cannot be found: its observed data ({}) do not share a first dimension given by an int in `data`",
            observed.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
        )
    };
    let help = "declare the observed variables with their row count first, as `y: vector[N]` and `x: matrix[N, D]`, and observe them with `~`; or fit on the full data (--method advi, or nuts)";
    // At the first `~` of the model whose left side is not a parameter (a likelihood).
    let params: Vec<&str> = el.checked.params.iter().map(|d| d.name.as_str()).collect();
    let likelihood = el.checked.model.iter().find_map(|s| match &s.kind {
        crate::syntax::ast::StmtKind::Tilde { lhs, .. } => {
            let root = match &lhs.kind {
                crate::syntax::ast::ExprKind::Index { base, .. } => base.as_name(),
                _ => lhs.as_name(),
            };
            (!root.is_some_and(|r| params.contains(&r) || r.contains('.'))).then_some(s.span)
        }
        _ => None,
    });
    if let (true, Some((name, span))) = (observed.is_empty(), density_into_var(el)) {
        // A density of a datum whose value goes into a `var` (a changepoint's or a mixture's
        // accumulated log likelihood): where, and how to write it by rows.
        return Diagnostic::error(
            Code::NoRows,
            span,
            format!("this model's observation rows cannot be found: `{name}` is read by a density whose value goes into a `var`, not straight into `target +=`"),
        )
        .with_label("accumulated in a var")
        .with_help("write each row's term as its own `target +=` in the loop over rows (a mixture of a row's densities as `target += log_mix(...)`); a likelihood that combines all rows before adding them (log_sum_exp over a changepoint) couples the rows and needs the full data (--method advi, or nuts)");
    }
    match likelihood {
        Some(span) => Diagnostic::error(Code::NoRows, span, why)
            .with_label(if observed.is_empty() { "observes no data variable by its name" } else { "observed here" })
            .with_help(help),
        None => Diagnostic::error_nowhere(Code::NoRows, why).with_help(help),
    }
}

/// The first density (`_lpdf`, `_lpmf`) of a data variable in the model that is not the value
/// of a `target +=` (it is assigned to a `var` or bound by `let`), with the variable's name.
fn density_into_var(el: &Elaborated) -> Option<(String, Span)> {
    use crate::syntax::ast::{Stmt, StmtKind};
    fn call(e: &Expr, data: &[&str]) -> Option<(String, Span)> {
        if let ExprKind::Call { callee, args } = &e.kind {
            if callee.name.ends_with("_lpdf") || callee.name.ends_with("_lpmf") {
                let root = args.first().and_then(|a| match &a.value.kind {
                    ExprKind::Index { base, .. } => base.as_name(),
                    _ => a.value.as_name(),
                });
                if let Some(r) = root.filter(|r| data.contains(r)) {
                    return Some((r.to_string(), e.span));
                }
            }
        }
        e.kind.children().find_map(|c| call(c, data))
    }
    fn walk(stmts: &[Stmt], data: &[&str]) -> Option<(String, Span)> {
        stmts.iter().find_map(|s| match &s.kind {
            StmtKind::Assign { rhs, .. } => call(rhs, data),
            StmtKind::Let { value, .. } => call(value, data),
            StmtKind::Var { init: Some(value), .. } => call(value, data),
            StmtKind::For { body, .. } => walk(body, data),
            StmtKind::If { then, else_, .. } => {
                walk(then, data).or_else(|| walk(else_.as_deref().unwrap_or(&[]), data))
            }
            _ => None,
        })
    }
    let data: Vec<&str> = el.checked.data.iter().map(|d| d.name.as_str()).collect();
    walk(&el.checked.model, &data)
}

/// An error at the source of value `v` when it has one, or at no place.
fn at_origin(p: &Program, v: V, code: Code, msg: String, label: &str) -> Diagnostic {
    match p.origins.get(&v) {
        Some(span) => Diagnostic::error(code, *span, msg).with_label(label),
        None => Diagnostic::error_nowhere(code, msg),
    }
}

/// A recoverable lowering failure: already reported.
struct Fail;

type R<T> = Result<T, Fail>;

struct Lower<'a> {
    p: Program,
    data: &'a BoundData,
    funcs: &'a HashMap<String, FuncDef>,
    diags: &'a mut Diagnostics,
    scopes: Vec<HashMap<String, Bound>>,
    cur: BlockId,
    /// Contents of values known while lowering.
    known: HashMap<V, Vec<f64>>,
    /// Values and slots that depend on parameters (the rest depend on data alone, though
    /// they may differ between loop iterations).
    on_params: std::collections::HashSet<V>,
    slots_on_params: std::collections::HashSet<Slot>,
    /// Values and slots that read the observation rows ([`row_variables`]): a `target +=` of
    /// one is the likelihood's.
    on_rows: std::collections::HashSet<V>,
    slots_on_rows: std::collections::HashSet<Slot>,
    affine: HashMap<V, Affine>,
    /// Every value a data-only int scalar takes over the iterations of the loops around it,
    /// where that is known now: a loop's variable over known bounds, a data array indexed by
    /// one, and those shifted or scaled by known ints (`g[n] - 1`). An index among them must
    /// lie in range (SPEC §7: reported before any sampling starts).
    possible: HashMap<V, Vec<f64>>,
    /// `if`s around the current statement whose condition is not known now: a value inside one
    /// need not take every value in `possible`, so its indices are not checked against it.
    dynamic_ifs: usize,
    scratch: prim::Scratch,
    /// In the generated block (draws allowed).
    generated: bool,
    /// Nested `fn` inlining depth (recursion guard).
    inline_depth: usize,
    purpose: Purpose,
    options: Options,
    /// Names whose `let` failed (already reported): their uses fail without a second report.
    failed_lets: std::collections::HashSet<String>,
    /// In a variational program, each locally reparameterised matrix by name: its means,
    /// its standard deviations, and a draw of it once one is needed.
    local: HashMap<String, (V, V, Option<V>)>,
    /// Each `join`'s output: how many columns it joins (the sum over its inputs of theirs,
    /// an input that is no join's output counting 1), for global drop-path.
    join_columns: HashMap<V, usize>,
    joins: usize,
}

/// What a program is made for; it decides what is lowered and which rewrites run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The log density (`target` and the transforms' Jacobians) for samplers and optimisers,
    /// with the generated quantities' block; every rewrite that lowers its cost runs.
    Density,
    /// The forward entry: from a draw's *constrained* values (the parameter vector is the
    /// draws' columns, each parameter with the identity transform) to the distribution of
    /// every observed variable ([`Program::sites`]). Nothing is added to `target`; only
    /// dead code is removed, since the density rewrites reshape the likelihood the sites
    /// are read from.
    Forward,
    /// A draw's constrained values and generated quantities from the unconstrained vector:
    /// the parameters' transforms and the `generated` block, without the log density (its
    /// `target` is 0). Samplers run it once per kept draw.
    Draws,
}

/// The log density's program ([`Purpose::Density`]), carrying the program of its draws
/// ([`Purpose::Draws`], in [`Program::draws`]).
pub fn lower(el: &Elaborated, data: &BoundData, diags: &mut Diagnostics) -> Option<Program> {
    lower_for(el, data, Purpose::Density, diags)
}

/// The program for `purpose`; a density's carries its draws program.
pub fn lower_for(el: &Elaborated, data: &BoundData, purpose: Purpose, diags: &mut Diagnostics) -> Option<Program> {
    lower_with(el, data, purpose, Options::default(), diags)
}

/// Variants of a program, each reading runtime inputs ([`crate::ir::InputKind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `dropout` multiplies by a mask read from a runtime input and rescales, instead of
    /// being the identity.
    pub dropout_masks: bool,
    /// Evaluate the model on `B` observation rows chosen at call time (a minibatch): the row
    /// variables ([`row_variables`]) are read at the rows of a `Rows` input and their size
    /// is `B` throughout the model.
    pub batch: Option<usize>,
    /// Multiply each part of the density by a `Weight` input (the likelihood by N/B for a
    /// minibatch, a tempered or annealed part), so that the gradient is of the weighted sum.
    pub part_weights: bool,
    /// The program a mean-field variational trainer differentiates ([`crate::ir::variational`]):
    /// Gaussian priors left to the trainer's closed-form KL, matrices used as `A @ W` taken
    /// as their means and standard deviations with the local reparameterisation. Its layout
    /// is in [`Program::variational`]; the `generated` block is not lowered.
    pub variational: bool,
    /// In a variational program, apply the local reparameterisation where it applies (else
    /// every parameter is drawn once per evaluation by the trainer).
    pub local_reparam: bool,
    /// `join` multiplies each input by a `JoinMask` input and averages those kept, instead of
    /// averaging all (FractalNet's drop-path, drawn by the trainer).
    pub drop_path: bool,
}

/// [`lower_for`] with options.
pub fn lower_with(
    el: &Elaborated,
    data: &BoundData,
    purpose: Purpose,
    options: Options,
    diags: &mut Diagnostics,
) -> Option<Program> {
    // Layer arguments the data's integers give (`dense(x, K)` with K read as 0).
    let outside: Vec<_> = el.deferred_bounds.iter().filter_map(|b| b.check(|n| data.int(n))).collect();
    if !outside.is_empty() {
        outside.into_iter().for_each(|d| diags.push(d));
        return None;
    }
    let mut p = lower_one(el, data, purpose, options, diags)?;
    if purpose == Purpose::Density {
        p.draws = Some(Box::new(lower_one(el, data, Purpose::Draws, Options::default(), diags)?));
    }
    Some(p)
}

/// The rewrites each purpose runs, in order.
fn passes(p: &mut Program, purpose: Purpose) -> Result<(), String> {
    crate::ir::verify::after_pass(p, "lowering")?;
    match purpose {
        Purpose::Density => crate::ir::rewrite::rewrite(p).map(|_| ()),
        Purpose::Forward | Purpose::Draws => {
            crate::ir::rewrite::dead_code(p);
            crate::ir::rewrite::compact_consts(p);
            crate::ir::verify::after_pass(p, "dead-code elimination")
        }
    }
}

fn lower_one(
    el: &Elaborated,
    data: &BoundData,
    purpose: Purpose,
    options: Options,
    diags: &mut Diagnostics,
) -> Option<Program> {
    let funcs = &el.checked.funcs;
    // A minibatch: the rows' size is B wherever the model uses it.
    let batched;
    let data = match options.batch {
        None => data,
        Some(b) => {
            let Some(size) = row_size(el) else {
                diags.push(no_rows_diagnostic(el));
                return None;
            };
            if let Some(span) = crate::ir::rowcheck::row_count_as_number(&el.checked.model, &size) {
                diags.push(
                    Diagnostic::error(
                        Code::RowCountUsed,
                        span,
                        format!("`{size}` is used as a number, but in a minibatch it would be the batch size"),
                    )
                    .with_label("the row count as a number")
                    .with_help(FULL_BATCH_HELP),
                );
                return None;
            }
            let mut d = data.clone();
            let full = d.int(&size).unwrap_or(0).max(0) as usize;
            for (name, var) in &mut d.vars {
                if *name == size {
                    var.values = crate::data::Values::Int(vec![b as i64]);
                }
            }
            d.rows = Some((size, full));
            batched = d;
            &batched
        }
    };
    let mut lw = Lower {
        p: Program { blocks: vec![Vec::new()], execs: vec![1], ..Program::default() },
        data,
        funcs,
        diags,
        scopes: vec![HashMap::new()],
        cur: ENTRY,
        known: HashMap::new(),
        on_params: Default::default(),
        slots_on_params: Default::default(),
        on_rows: Default::default(),
        slots_on_rows: Default::default(),
        affine: HashMap::new(),
        possible: HashMap::new(),
        dynamic_ifs: 0,
        scratch: prim::Scratch::default(),
        generated: false,
        inline_depth: 0,
        purpose,
        options,
        failed_lets: Default::default(),
        local: HashMap::new(),
        join_columns: HashMap::new(),
        joins: 0,
    };
    lw.lower_all(el).ok()?;
    let mut p = std::mem::take(&mut lw.p);
    if let Some(b) = options.batch {
        if let Err(c) = crate::ir::rowcheck::check(&p, b) {
            lw.diags.push(
                Diagnostic::error(
                    Code::RowsCoupled,
                    c.span,
                    format!("the likelihood is not a sum over observation rows: {}", c.why),
                )
                .with_label("couples rows")
                .with_help(FULL_BATCH_HELP),
            );
            return None;
        }
    }
    if let Err(e) = passes(&mut p, purpose) {
        lw.diags.push(Diagnostic::error_nowhere(Code::Unsupported, format!("internal: the IR does not verify {e}")));
        return None;
    }
    // Execution counts of the density's blocks, for backends that size storage up front.
    match crate::ir::interp::Interp::new(&p).count_execs(memory_bytes()) {
        Ok(counts) => {
            for (b, c) in counts.into_iter().enumerate() {
                if c > 0 {
                    p.execs[b] = c;
                }
            }
        }
        Err((_, Some(Failed::InputBound(v)))) => {
            let msg = "a loop whose bounds are read from the observation rows cannot be trained on minibatches";
            let d = at_origin(&p, v, Code::Unsupported, msg.to_string(), "read from each row");
            lw.diags.push(d.with_help(
                "give every row the same number of terms (pad, and mask the padding with a 0/1 weight), or run without --batch-size",
            ));
            return None;
        }
        Err((_, Some(Failed::TooLarge(v, bytes)))) => {
            let msg = format!(
                "this loop's passes would keep about {bytes:.3e} bytes of values: more than this machine's memory holds"
            );
            let d = at_origin(&p, v, Code::TooLarge, msg, "too many passes");
            lw.diags.push(d.with_help(
                "every pass of a loop keeps its values for the gradient; write the loop over fewer elements, or as whole-vector operations",
            ));
            return None;
        }
        Err((e, at)) => {
            let msg = format!("with this data the model cannot be evaluated: {e}");
            let span = match at {
                Some(Failed::Op(v)) => p.origins.get(&v),
                Some(Failed::Store(v)) => p.store_origins.get(&v),
                Some(Failed::InputBound(_) | Failed::TooLarge(..)) | None => None,
            };
            let d = match span {
                Some(span) => {
                    Diagnostic::error(Code::BindIndex, *span, msg).with_label("out of range at some iteration")
                }
                None => Diagnostic::error_nowhere(Code::BindIndex, msg),
            };
            lw.diags.push(d.with_help("loop bounds and indices computed from the data reach outside a container"));
            return None;
        }
    }
    Some(p)
}

impl<'a> Lower<'a> {
    fn err(&mut self, code: Code, span: Span, msg: impl Into<String>, label: impl Into<String>) -> Fail {
        self.diags.push(Diagnostic::error(code, span, msg).with_label(label));
        Fail
    }

    fn bind(&mut self, name: &str, b: Bound) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), b);
        }
    }

    fn lookup(&self, name: &str) -> Option<Bound> {
        self.scopes.iter().rev().find_map(|s| s.get(name).cloned())
    }

    fn new_value(&mut self, shape: Vec<usize>, int: bool) -> V {
        self.p.new_value(ValueInfo { shape, int, block: self.cur, name: None })
    }

    fn push(&mut self, inst: Inst) {
        self.p.blocks[self.cur.0 as usize].push(inst);
    }

    fn new_block(&mut self) -> BlockId {
        self.p.new_block()
    }

    fn constant(&mut self, values: Vec<f64>, shape: Vec<usize>, int: bool) -> V {
        let dst = self.new_value(shape, int);
        if values.len() == 1 {
            self.push(Inst::Op { dst, prim: Prim::Lit(values[0]), args: vec![] });
            if int {
                self.affine.insert(dst, Affine::constant(values[0] as i64));
            }
        } else {
            self.p.consts.push(values.clone());
            let c = self.p.consts.len() as u32 - 1;
            self.push(Inst::Op { dst, prim: Prim::Const(c), args: vec![] });
        }
        self.known.insert(dst, values);
        dst
    }

    fn lit(&mut self, v: f64, int: bool) -> V {
        self.constant(vec![v], vec![], int)
    }

    /// Emit `prim(args)`, folding it when every argument is known.
    fn op(&mut self, prim: Prim, args: &[V], span: Span) -> R<V> {
        let shapes: Vec<Vec<usize>> = args.iter().map(|a| self.p.info(*a).shape.clone()).collect();
        let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let slot_shape = match &prim {
            Prim::Load(s, _) => Some(self.p.slots[s.0 as usize].shape.clone()),
            _ => None,
        };
        let shape = match prim.shape(&shape_refs, &self.p.consts, slot_shape.as_deref()) {
            Ok(s) if span != Span::default() => {
                self.fits_in_memory(&s, span)?;
                s
            }
            Ok(s) => s,
            Err(why) => {
                let shown: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
                return Err(self.err(
                    Code::BindShape,
                    span,
                    format!("shapes disagree with the data's sizes: {why}"),
                    format!("operand shapes {}", shown.join(", ")),
                ));
            }
        };
        let int = match &prim {
            Prim::Binary(b) => {
                b.is_logical()
                    || (matches!(b, Bin::Add | Bin::Sub | Bin::Mul | Bin::IntDiv | Bin::Mod | Bin::Min | Bin::Max)
                        && args.iter().all(|a| self.p.info(*a).int))
            }
            Prim::Unary(Un::Not) => true,
            Prim::Unary(Un::Neg | Un::Abs) => self.p.info(args[0]).int,
            Prim::Index(_) | Prim::Select => {
                args.first().is_some_and(|a| self.p.info(*a).int)
                    && (!matches!(prim, Prim::Select) || args[1..].iter().all(|a| self.p.info(*a).int))
            }
            Prim::Load(s, _) => self.p.slots[s.0 as usize].int,
            Prim::Reduce(Red::Sum | Red::Min | Red::Max | Red::Prod) => self.p.info(args[0]).int,
            Prim::Rng(f, _) => f.is_discrete(),
            _ => false,
        };
        let foldable = !matches!(prim, Prim::Constrain(_) | Prim::Load(..) | Prim::Rng(..))
            && args.iter().all(|a| self.known.contains_key(a));
        if let (Prim::Binary(b @ (Bin::IntDiv | Bin::Mod)), true) = (&prim, int) {
            // An int divisor known to be 0 has no quotient (a real one gives ±inf, as IEEE).
            if self.known.get(&args[1]).is_some_and(|d| d.contains(&0.0)) {
                let what = if *b == Bin::Mod { "remainder" } else { "integer division" };
                return Err(self.err(
                    Code::DivByZero,
                    span,
                    format!("{what} by zero: the divisor is 0 with this data"),
                    "the divisor is 0",
                ));
            }
        }
        if foldable {
            let vals: Vec<Vec<f64>> = args.iter().map(|a| self.known[a].clone()).collect();
            let refs: Vec<&[f64]> = vals.iter().map(|v| v.as_slice()).collect();
            let mut out = vec![0.0; shape.iter().product()];
            match prim::eval(&prim, &refs, &shape_refs, &shape, &mut out, &self.p.consts, &mut self.scratch, None) {
                Ok(()) => {
                    // Data that make a value not finite (the log of a negative datum): where.
                    let finite = out.iter().all(|x| x.is_finite());
                    let v = self.constant(out, shape, int);
                    if !finite && span != Span::default() {
                        self.p.origins.insert(v, span);
                    }
                    if args.iter().any(|a| self.on_rows.contains(a)) {
                        self.on_rows.insert(v);
                    }
                    return Ok(v);
                }
                Err(why) => return Err(self.err(Code::BindIndex, span, why, "evaluated when the data is read")),
            }
        }
        let dst = self.new_value(shape, int);
        // A minibatch program's row check names the operation that couples rows; a log density
        // that is not finite at a point, the operation where it starts to be.
        if matches!(prim, Prim::Index(_) | Prim::Load(..)) || span != Span::default() {
            self.p.origins.insert(dst, span);
        }
        let from_slot = matches!(&prim, Prim::Load(s, _) if self.slots_on_params.contains(s));
        if from_slot || args.iter().any(|a| self.on_params.contains(a)) {
            self.on_params.insert(dst);
        }
        let from_rows = matches!(&prim, Prim::Load(s, _) if self.slots_on_rows.contains(s));
        if from_rows || args.iter().any(|a| self.on_rows.contains(a)) {
            self.on_rows.insert(dst);
        }
        // Track affine ints through + - * of ints.
        if int && self.p.info(dst).shape.is_empty() {
            if let Prim::Binary(b @ (Bin::Add | Bin::Sub | Bin::Mul)) = &prim {
                let (a0, a1) = (self.affine.get(&args[0]).cloned(), self.affine.get(&args[1]).cloned());
                let r = match (b, a0, a1) {
                    (Bin::Add, Some(x), Some(y)) => x.combine(&y, 1),
                    (Bin::Sub, Some(x), Some(y)) => x.combine(&y, -1),
                    (Bin::Mul, Some(x), Some(y)) => match (x.as_const(), y.as_const()) {
                        (Some(k), _) => y.scale(k),
                        (_, Some(k)) => x.scale(k),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(r) = r {
                    self.affine.insert(dst, r);
                }
            }
        }
        if int && self.p.info(dst).shape.is_empty() {
            if let Some(vals) = self.possible_values(&prim, args) {
                self.possible.insert(dst, vals);
            }
        }
        self.push(Inst::Op { dst, prim, args: args.to_vec() });
        Ok(dst)
    }

    /// The values an int scalar `prim(args)` takes over the loops around it, when every
    /// argument is known or has its [`Lower::possible`] values and at most one varies: a
    /// known array at a varying index, or a varying int and a known one combined.
    fn possible_values(&self, prim: &Prim, args: &[V]) -> Option<Vec<f64>> {
        let varying = |v: &V| self.possible.get(v);
        let known_scalar = |v: &V| self.known.get(v).filter(|k| k.len() == 1).map(|k| k[0]);
        match prim {
            Prim::Index(ix) if ix.as_slice() == [Ix::Single] => {
                let base = self.known.get(&args[0])?;
                let at = varying(&args[1])?;
                at.iter().map(|i| base.get(*i as usize).copied().filter(|_| *i >= 0.0)).collect()
            }
            Prim::Unary(Un::Neg) => Some(varying(&args[0])?.iter().map(|x| -x).collect()),
            Prim::Binary(b @ (Bin::Add | Bin::Sub | Bin::Mul | Bin::IntDiv | Bin::Mod)) => {
                let (xs, k, flipped) = match (varying(&args[0]), varying(&args[1])) {
                    (Some(xs), None) => (xs, known_scalar(&args[1])?, false),
                    (None, Some(xs)) => (xs, known_scalar(&args[0])?, true),
                    _ => return None,
                };
                xs.iter()
                    .map(|x| {
                        let (a, c) = if flipped { (k, *x) } else { (*x, k) };
                        let v = b.f(a, c);
                        v.is_finite().then_some(v)
                    })
                    .collect()
            }
            _ => None,
        }
    }

    /// `dropout(x, p)`: the identity, or with masks asked for, `x * mask / (1 - p)` where the
    /// mask is a runtime input of x's shape.
    fn dropout(&mut self, x: V, p: V, p_expr: &Expr, span: Span) -> R<V> {
        let prob = match self.known.get(&p) {
            Some(v) if v.len() == 1 && (0.0..1.0).contains(&v[0]) => v[0],
            _ => return Err(self.err(
                Code::NotConstant,
                p_expr.span,
                "dropout's probability must be a number from 0 up to (not including) 1, known when the data is read",
                "not such a number",
            )),
        };
        if !self.options.dropout_masks {
            return Ok(x);
        }
        let shape = self.p.info(x).shape.clone();
        let k = self.p.inputs.len() as u32;
        self.p.inputs.push(crate::ir::InputInfo {
            name: format!("dropout.{k}"),
            shape: shape.clone(),
            kind: crate::ir::InputKind::DropoutMask { p: prob },
        });
        let mask = self.new_value(shape, false);
        self.push(Inst::Op { dst: mask, prim: Prim::Input(k), args: vec![] });
        let kept = self.op(Prim::Binary(Bin::Mul), &[x, mask], span)?;
        let scale = self.lit(1.0 / (1.0 - prob), false);
        self.op(Prim::Binary(Bin::Mul), &[kept, scale], span)
    }

    /// `join(a, b, ...)`: the mean of the inputs; with drop-path, Σ mᵢ aᵢ / Σ mᵢ with each
    /// mᵢ a `JoinMask` input the trainer draws (1, all kept, until it does).
    fn join(&mut self, vals: &[V], span: Span) -> R<V> {
        let columns: Vec<usize> = vals.iter().map(|v| self.join_columns.get(v).copied().unwrap_or(1)).collect();
        let out = if self.options.drop_path {
            let join = self.joins;
            self.joins += 1;
            let (mut num, mut den) = (None, None);
            for (i, v) in vals.iter().enumerate() {
                let k = self.p.inputs.len() as u32;
                self.p.inputs.push(crate::ir::InputInfo {
                    name: format!("join.{join}.{i}"),
                    shape: vec![],
                    kind: crate::ir::InputKind::JoinMask { join, input: i, columns: columns.clone() },
                });
                let m = self.input_value(k);
                let t = self.op(Prim::Binary(Bin::Mul), &[*v, m], span)?;
                num = Some(match num {
                    None => t,
                    Some(a) => self.op(Prim::Binary(Bin::Add), &[a, t], span)?,
                });
                den = Some(match den {
                    None => m,
                    Some(a) => self.op(Prim::Binary(Bin::Add), &[a, m], span)?,
                });
            }
            let (num, den) = (num.unwrap_or(vals[0]), den.unwrap_or(vals[0]));
            self.op(Prim::Binary(Bin::Div), &[num, den], span)?
        } else {
            let mut acc = vals[0];
            for v in &vals[1..] {
                acc = self.op(Prim::Binary(Bin::Add), &[acc, *v], span)?;
            }
            let k = self.lit(vals.len() as f64, false);
            self.op(Prim::Binary(Bin::Div), &[acc, k], span)?
        };
        self.join_columns.insert(out, columns.iter().sum());
        Ok(out)
    }

    /// Row variable `v` (all `n` rows) read at the `b` rows of the `Rows` input.
    fn batch_rows(&mut self, v: V, b: usize, n: usize) -> R<V> {
        let rows = match self.p.inputs.iter().position(|i| matches!(i.kind, crate::ir::InputKind::Rows { .. })) {
            Some(k) => self.input_value(k as u32),
            None => {
                let k = self.p.inputs.len() as u32;
                self.p.inputs.push(crate::ir::InputInfo {
                    name: "rows".into(),
                    shape: vec![b],
                    kind: crate::ir::InputKind::Rows { n },
                });
                self.input_value(k)
            }
        };
        let rank = self.p.info(v).shape.len();
        let mut ix = vec![Ix::Gather];
        ix.extend(std::iter::repeat_n(Ix::All, rank.saturating_sub(1)));
        let span = Span::default();
        self.op(Prim::Index(ix), &[v, rows], span)
    }

    /// Lay out a variational program ([`crate::ir::variational::Layout`]): after the model's
    /// parameters (ending at `offset`), a block of standard deviations per locally
    /// reparameterised matrix.
    fn variational_layout(&mut self, plan: &crate::ir::variational::Plan, mut offset: usize) {
        if !self.options.variational || self.purpose != Purpose::Density {
            return;
        }
        let index = |p: &Program, n: &str| p.params.iter().position(|pl| pl.name == n);
        let mut layout = crate::ir::variational::Layout { model_params: self.p.params.len(), ..Default::default() };
        for (name, loc, scale) in &plan.gaussian {
            if let Some(i) = index(&self.p, name) {
                layout.gaussian.push((i, *loc, *scale));
            }
        }
        for name in &plan.local {
            let Some(i) = index(&self.p, name) else { continue };
            let (shape, mean) = (self.p.params[i].shape.clone(), self.p.params[i].value);
            let n: usize = shape.iter().product();
            let sd = self.new_value(shape.clone(), false);
            let k = self.p.params.len();
            self.p.params.push(ParamLayout {
                name: format!("{name}.sd"),
                shape,
                kind: Kind::Identity,
                offset,
                free_len: n,
                value: sd,
            });
            offset += n;
            self.push(Inst::Op { dst: sd, prim: Prim::Constrain(k as u32), args: vec![] });
            self.on_params.insert(sd);
            self.local.insert(name.clone(), (mean, sd, None));
            layout.local.push((i, k));
        }
        self.p.variational = Some(layout);
    }

    /// `a @ W` for a locally reparameterised `W`: on a minibatch's rows (a matrix per row)
    /// `a @ M + sqrt((a ⊙ a) @ (S ⊙ S) + 1e-12) ⊙ ε` ([`Prim::Reparam`]) with ε an input of fresh standard normals per
    /// row and unit; otherwise `a @ (M + S ⊙ ε)` with one draw of W.
    fn local_matmul(&mut self, a: V, name: &str, span: Span) -> R<V> {
        let Some(&(mean, sd, drawn)) = self.local.get(name) else { return Err(Fail) };
        let per_row = self.on_rows.contains(&a) && self.p.info(a).shape.len() == 2;
        if !per_row {
            let w = match drawn {
                Some(w) => w,
                None => {
                    let shape = self.p.info(mean).shape.clone();
                    let eps = self.noise(shape, name);
                    let spread = self.op(Prim::Binary(Bin::Mul), &[sd, eps], span)?;
                    let w = self.op(Prim::Binary(Bin::Add), &[mean, spread], span)?;
                    self.local.insert(name.to_string(), (mean, sd, Some(w)));
                    w
                }
            };
            return self.op(Prim::MatMul, &[a, w], span);
        }
        let m = self.op(Prim::MatMul, &[a, mean], span)?;
        let a2 = self.op(Prim::Binary(Bin::Mul), &[a, a], span)?;
        let s2 = self.op(Prim::Binary(Bin::Mul), &[sd, sd], span)?;
        let var = self.op(Prim::MatMul, &[a2, s2], span)?;
        let shape = self.p.info(m).shape.clone();
        let eps = self.noise(shape, name);
        self.op(Prim::Reparam, &[m, var, eps], span)
    }

    /// A new input of standard normal noise.
    fn noise(&mut self, shape: Vec<usize>, name: &str) -> V {
        let k = self.p.inputs.len() as u32;
        self.p.inputs.push(crate::ir::InputInfo {
            name: format!("noise.{name}"),
            shape,
            kind: crate::ir::InputKind::Noise,
        });
        self.input_value(k)
    }

    /// A value reading input `k` (its shape and int-ness from the input).
    fn input_value(&mut self, k: u32) -> V {
        let info = &self.p.inputs[k as usize];
        let int = matches!(info.kind, crate::ir::InputKind::Rows { .. });
        let dst = self.new_value(info.shape.clone(), int);
        self.push(Inst::Op { dst, prim: Prim::Input(k), args: vec![] });
        dst
    }

    /// `target += v` in its part, weighted when asked.
    fn add_target(&mut self, v: V, span: Span) -> R<()> {
        let part = self.part_of(v);
        let v = if self.options.part_weights {
            let k = match self.p.inputs.iter().position(|i| i.kind == crate::ir::InputKind::Weight(part)) {
                Some(k) => k as u32,
                None => {
                    self.p.inputs.push(crate::ir::InputInfo {
                        name: format!(
                            "weight.{}",
                            if part == crate::ir::Part::Likelihood { "likelihood" } else { "prior" }
                        ),
                        shape: vec![],
                        kind: crate::ir::InputKind::Weight(part),
                    });
                    self.p.inputs.len() as u32 - 1
                }
            };
            let w = self.input_value(k);
            let weighted = self.op(Prim::Binary(Bin::Mul), &[v, w], span)?;
            if part == crate::ir::Part::Likelihood {
                self.on_rows.insert(weighted);
            }
            weighted
        } else {
            v
        };
        self.push(Inst::Target { value: v, part });
        Ok(())
    }

    fn part_of(&self, v: V) -> crate::ir::Part {
        if self.on_rows.contains(&v) {
            crate::ir::Part::Likelihood
        } else {
            crate::ir::Part::Prior
        }
    }

    fn int_const(&self, v: V) -> Option<i64> {
        self.known.get(&v).filter(|k| k.len() == 1).map(|k| k[0] as i64)
    }

    // ---- the whole program ----

    fn lower_all(&mut self, el: &Elaborated) -> R<()> {
        let ck = &el.checked;
        let rows = row_variables(el);
        for (name, var) in &self.data.vars {
            let int = matches!(var.values, Values::Int(_));
            let vals: Vec<f64> = (0..var.values.len()).map(|i| var.values.get_f64(i)).collect();
            let mut v = self.constant(vals, var.dims.clone(), int);
            self.p.values[v.0 as usize].name = Some(name.clone());
            if rows.contains(name) {
                if let (Some(b), Some((_, n))) = (self.options.batch, &self.data.rows) {
                    v = self.batch_rows(v, b, *n)?;
                    self.p.values[v.0 as usize].name = Some(name.clone());
                }
                self.on_rows.insert(v);
            }
            self.bind(name, Bound::Value(v));
        }
        // A minibatch cannot update a parameter with one value per row.
        if let (Some(_), Some((size, _))) = (self.options.batch, &self.data.rows) {
            for d in &ck.params {
                let (dims, _) = type_dims(&d.type_expr);
                if dims.iter().any(|e| e.as_name() == Some(size.as_str())) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::ParamPerRow,
                            d.span,
                            format!("`{}` has a value per observation row (its size is `{size}`), so a minibatch of rows cannot update it", d.name),
                        )
                        .with_label("one value per row")
                        .with_help(FULL_BATCH_HELP),
                    );
                    return Err(Fail);
                }
            }
        }
        // Parameters, in order (bounds may use earlier ones), then their priors.
        let mut offset = 0;
        for (i, d) in ck.params.iter().enumerate() {
            let v = self.lower_param(i as u32, d, &mut offset)?;
            self.bind(&d.name, Bound::Value(v));
        }
        let mut plan = (self.options.variational && self.purpose == Purpose::Density)
            .then(|| crate::ir::variational::plan(el))
            .unwrap_or_default();
        if !self.options.local_reparam {
            plan.local.clear();
        }
        self.variational_layout(&plan, offset);
        let mut failed = false;
        // A draw's values need the parameters and `generated` only.
        let density = self.purpose != Purpose::Draws;
        let closed_form = |d: &&Decl| !plan.gaussian.iter().any(|(n, ..)| *n == d.name);
        for d in ck.params.iter().filter(|_| density).filter(closed_form) {
            if let Some(prior) = &d.prior {
                let lhs = Expr::new(ExprKind::Name(d.name.clone()), d.name_span);
                if self.tilde(&lhs, prior, d.span).is_err() {
                    failed = true;
                }
            }
        }
        self.scopes.push(HashMap::new());
        for s in ck.model.iter().filter(|_| density) {
            if self.stmt(s, None).is_err() {
                failed = true;
            }
        }
        self.scopes.pop();
        // Generated quantities: their own entry block, run per draw.
        if !ck.generated.is_empty() && self.purpose != Purpose::Forward && !self.options.variational {
            let b = self.new_block();
            self.p.execs[b.0 as usize] = 1;
            self.p.generated = Some(b);
            let saved = self.cur;
            self.cur = b;
            self.generated = true;
            self.scopes.push(HashMap::new());
            let mut outputs: Vec<(String, Span)> = Vec::new();
            for s in &ck.generated {
                match &s.kind {
                    StmtKind::Assign { lhs, op: AssignOp::Set, rhs }
                        if lhs.as_name().is_some_and(|n| self.lookup(n).is_none()) =>
                    {
                        let name = lhs.as_name().unwrap_or_default().to_string();
                        match self.expr(rhs) {
                            Ok(v) => {
                                self.bind(&name, Bound::Value(v));
                                outputs.push((name, s.span));
                            }
                            Err(_) => failed = true,
                        }
                    }
                    StmtKind::Var { name, .. } => {
                        if self.stmt(s, None).is_err() {
                            failed = true;
                        }
                        outputs.push((name.name.clone(), s.span));
                    }
                    _ => {
                        if self.stmt(s, None).is_err() {
                            failed = true;
                        }
                    }
                }
            }
            for (name, span) in outputs {
                let v = match self.lookup(&name) {
                    Some(Bound::Value(v)) => v,
                    Some(Bound::Slot(s)) => self.op(Prim::Load(s, vec![]), &[], span)?,
                    None => continue,
                };
                self.p.outputs.push(Output { name, value: v });
            }
            self.scopes.pop();
            self.generated = false;
            self.cur = saved;
        }
        if failed {
            return Err(Fail);
        }
        Ok(())
    }

    fn eval_dims(&mut self, t: &TypeExpr) -> R<(Vec<usize>, bool)> {
        let (dims, int) = type_dims(t);
        let mut out = Vec::new();
        for d in dims {
            match eval_int(&d, self.data) {
                Ok(v) if v >= 0 => out.push(v as usize),
                Ok(v) => {
                    return Err(self.err(
                        Code::DataNegativeSize,
                        d.span,
                        format!("size is {v}"),
                        "must be zero or more",
                    ))
                }
                Err(_) => {
                    // A size computed in the model (a loop index, say): lower it and require a constant.
                    let v = self.expr(&d)?;
                    match self.int_const(v) {
                        Some(n) if n >= 0 => out.push(n as usize),
                        _ => {
                            return Err(self.err(
                                Code::SizeNotData,
                                d.span,
                                "this size must be known when the data is read",
                                "not a constant",
                            ))
                        }
                    }
                }
            }
        }
        let span = t.span;
        self.fits_in_memory(&out, span)?;
        Ok((out, int))
    }

    /// A value of `shape` must fit in this machine's memory (eight bytes an element): one
    /// that cannot would abort the allocation rather than report.
    fn fits_in_memory(&mut self, shape: &[usize], span: Span) -> R<()> {
        let elements: f64 = shape.iter().map(|&d| d as f64).product();
        let memory = memory_bytes();
        if elements * 8.0 <= memory {
            return Ok(());
        }
        Err(self.err(
            Code::TooLarge,
            span,
            format!(
                "a value of shape {shape:?} has {elements:.3e} elements ({:.3e} bytes): more than this machine's memory holds",
                elements * 8.0
            ),
            "too large",
        ))
    }

    fn lower_param(&mut self, index: u32, d: &Decl, offset: &mut usize) -> R<V> {
        let (shape, _) = self.eval_dims(&d.type_expr)?;
        let n: usize = shape.iter().product();
        let kind = match d.decl.constraint {
            Constraint::Simplex => Kind::Simplex,
            Constraint::Ordered => Kind::Ordered,
            Constraint::PositiveOrdered => Kind::PositiveOrdered,
            Constraint::CholeskyCorr => Kind::CholeskyCorr,
            Constraint::None => match (&d.decl.lower, &d.decl.upper) {
                (None, None) => Kind::Identity,
                (Some(_), None) => Kind::Lower,
                (None, Some(_)) => Kind::Upper,
                (Some(_), Some(_)) => Kind::LowerUpper,
            },
        };
        let mut args = Vec::new();
        // The forward entry reads constrained values as they are.
        let kind = if self.purpose == Purpose::Forward { Kind::Identity } else { kind };
        if kind != Kind::Identity {
            for b in [&d.decl.lower, &d.decl.upper].into_iter().flatten() {
                args.push(self.expr(b)?);
            }
        }
        // Bounds known now that leave no room between them: no value satisfies them.
        if let (Kind::LowerUpper, Some(lo), Some(hi)) =
            (kind, args.first().and_then(|a| self.known.get(a)), args.get(1).and_then(|a| self.known.get(a)))
        {
            let at = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
            if let Some(i) = (0..lo.len().max(hi.len()).min(n.max(1))).find(|&i| !(at(lo, i) < at(hi, i))) {
                let (l, h) = (at(lo, i), at(hi, i));
                let span = d.decl.upper.as_ref().map_or(d.span, |u| u.span);
                return Err(self.err(
                    Code::DataOutOfRange,
                    span,
                    format!(
                        "`{}` has lower bound {l} and upper bound {h}: no value lies strictly between them",
                        d.name
                    ),
                    "the upper bound must be above the lower",
                ));
            }
        }
        // A simplex or correlation factor needs at least one element.
        if matches!(kind, Kind::Simplex | Kind::CholeskyCorr) && n == 0 {
            return Err(self.err(
                Code::DataOutOfRange,
                d.span,
                format!("`{}` has no elements: a simplex or correlation factor needs at least one", d.name),
                "of size 0 with this data",
            ));
        }
        let free_len = kind.free_len_of(&shape);
        let dst = self.new_value(shape.clone(), false);
        self.p.params.push(ParamLayout { name: d.name.clone(), shape, kind, offset: *offset, free_len, value: dst });
        *offset += free_len;
        self.p.values[dst.0 as usize].name = Some(d.name.clone());
        self.push(Inst::Op { dst, prim: Prim::Constrain(index), args });
        self.on_params.insert(dst);
        Ok(dst)
    }

    // ---- statements ----

    /// Lower one statement. `ret` collects a `return` value when inlining a `fn`.
    fn stmt(&mut self, s: &Stmt, ret: Option<&mut Option<V>>) -> R<()> {
        match &s.kind {
            StmtKind::Let { name, value } => {
                let v = match self.expr(value) {
                    Ok(v) => v,
                    Err(f) => {
                        self.failed_lets.insert(name.name.clone());
                        return Err(f);
                    }
                };
                if self.p.values[v.0 as usize].name.is_none() {
                    self.p.values[v.0 as usize].name = Some(name.name.clone());
                }
                self.bind(&name.name, Bound::Value(v));
            }
            StmtKind::Var { name, ty, init } => {
                let (shape, int) = self.eval_dims(ty)?;
                self.p.slots.push(SlotInfo { shape, int, name: name.name.clone() });
                let slot = Slot(self.p.slots.len() as u32 - 1);
                let value = match init {
                    Some(e) => Some(self.expr(e)?),
                    None => None,
                };
                self.push(Inst::Init { slot, value });
                self.bind(&name.name, Bound::Slot(slot));
            }
            StmtKind::Assign { lhs, op, rhs } => self.assign(lhs, *op, rhs, s.span)?,
            StmtKind::Tilde { lhs, dist } => self.tilde(lhs, dist, s.span)?,
            StmtKind::Target { value } => {
                if self.purpose == Purpose::Density {
                    let v = self.expr(value)?;
                    self.add_target(v, s.span)?;
                } else if self.purpose == Purpose::Forward {
                    // `target += normal_lpdf(y, mu, sigma)` observes `y` as `y ~ normal(mu,
                    // sigma)` does.
                    if let ExprKind::Call { callee, args } = &value.kind {
                        let family = ["_lpdf", "_lpmf"]
                            .iter()
                            .find_map(|sfx| callee.name.strip_suffix(sfx))
                            .filter(|f| Family::from_name(f).is_some());
                        if let (Some(f), Some(first)) = (family, args.first()) {
                            let dist = Expr::new(
                                ExprKind::Call {
                                    callee: Ident { name: f.to_string(), span: callee.span },
                                    args: args[1..].to_vec(),
                                },
                                value.span,
                            );
                            self.tilde(&first.value, &dist, s.span)?;
                        }
                    }
                }
            }
            StmtKind::For { var, lo, hi, body } => {
                let range = lo.span.to(hi.span);
                let (lo, hi) = (self.expr(lo)?, self.expr(hi)?);
                let block = self.new_block();
                let saved = self.cur;
                self.cur = block;
                let iv = self.new_value(vec![], true);
                self.p.values[iv.0 as usize].name = Some(var.name.clone());
                // Where a loop too large to run is reported.
                self.p.origins.insert(iv, range);
                self.affine.insert(iv, Affine { c: 0, terms: [(iv, 1)].into_iter().collect() });
                if let (Some(a), Some(b)) = (self.int_const(lo), self.int_const(hi)) {
                    if a < b && b - a <= POSSIBLE_MAX as i64 {
                        self.possible.insert(iv, (a..b).map(|k| k as f64).collect());
                    }
                }
                self.scopes.push(HashMap::new());
                self.bind(&var.name, Bound::Value(iv));
                let mut r = Ok(());
                for s in body {
                    if let Err(e) = self.stmt(s, None) {
                        r = Err(e);
                    }
                }
                self.scopes.pop();
                self.cur = saved;
                self.push(Inst::For { var: iv, lo, hi, body: block });
                r?;
            }
            StmtKind::If { cond, then, else_ } => {
                let c = self.expr(cond)?;
                if let Some(k) = self.int_const(c) {
                    // Known now: only the branch taken is lowered.
                    let chosen: &[Stmt] = if k != 0 { then } else { else_.as_deref().unwrap_or(&[]) };
                    self.scopes.push(HashMap::new());
                    let mut ret = ret;
                    for s in chosen {
                        self.stmt(s, ret.as_deref_mut())?;
                    }
                    self.scopes.pop();
                    return Ok(());
                }
                let branch = |lw: &mut Self, body: &[Stmt]| -> R<BlockId> {
                    let b = lw.new_block();
                    let saved = lw.cur;
                    lw.cur = b;
                    lw.scopes.push(HashMap::new());
                    lw.dynamic_ifs += 1;
                    let mut r = Ok(());
                    for s in body {
                        if let Err(e) = lw.stmt(s, None) {
                            r = Err(e);
                        }
                    }
                    lw.dynamic_ifs -= 1;
                    lw.scopes.pop();
                    lw.cur = saved;
                    r.map(|_| b)
                };
                let t = branch(self, then)?;
                let e = branch(self, else_.as_deref().unwrap_or(&[]))?;
                self.push(Inst::If { cond: c, then: t, else_: e });
            }
            StmtKind::Return { value } => {
                let v = self.expr(value)?;
                match ret {
                    Some(slot) => *slot = Some(v),
                    None => return Err(self.err(Code::MisplacedStmt, s.span, "`return` outside a function", "here")),
                }
            }
            StmtKind::Decl { .. } | StmtKind::DeclInit { .. } | StmtKind::Param { .. } | StmtKind::Error => {}
        }
        Ok(())
    }

    fn assign(&mut self, lhs: &Expr, op: AssignOp, rhs: &Expr, span: Span) -> R<()> {
        // `x[i][j]` is `x[i, j]`: the index lists of a chain, innermost first, one after the
        // other, each but the last of single positions (a slice or a gather would keep the
        // dimension the next list then indexes).
        let mut levels: Vec<&[Index]> = Vec::new();
        let mut base = lhs;
        while let ExprKind::Index { base: b, indices } = &base.kind {
            levels.push(indices);
            base = b;
        }
        levels.reverse();
        let name = base.as_name().unwrap_or_default().to_string();
        let indices: Vec<Index> = levels.iter().flat_map(|l| l.iter().cloned()).collect();
        let inner = levels.len().saturating_sub(1);
        let inner_len: usize = levels[..inner].iter().map(|l| l.len()).sum();
        let Some(Bound::Slot(slot)) = self.lookup(&name) else {
            return Err(self.err(Code::NotAssignable, lhs.span, format!("cannot assign to `{name}`"), "not a `var`"));
        };
        let slot_shape = self.p.slots[slot.0 as usize].shape.clone();
        let (ix, idx) = self.index_spec(&indices, &slot_shape, lhs.span)?;
        if ix[..inner_len].iter().any(|i| !matches!(i, Ix::Single)) {
            return Err(self.err(
                Code::Unsupported,
                lhs.span,
                format!("cannot assign through a chain of indices with a slice or a gather in `{name}`"),
                "write the positions as one index list, `x[i, j]`, or assign the whole slice",
            ));
        }
        let mut value = self.expr(rhs)?;
        if op != AssignOp::Set {
            let cur = self.op(Prim::Load(slot, ix.clone()), &idx, lhs.span)?;
            let b = match op {
                AssignOp::Add => Bin::Add,
                AssignOp::Sub => Bin::Sub,
                AssignOp::Mul => Bin::Mul,
                _ => Bin::Div,
            };
            value = self.op(Prim::Binary(b), &[cur, value], span)?;
        }
        self.p.store_origins.entry(value).or_insert(lhs.span);
        if self.on_params.contains(&value) {
            self.slots_on_params.insert(slot);
        }
        if self.on_rows.contains(&value) {
            self.slots_on_rows.insert(slot);
        }
        self.push(Inst::Store { slot, ix, index: idx, value });
        Ok(())
    }

    fn tilde(&mut self, lhs: &Expr, dist: &Expr, span: Span) -> R<()> {
        let ExprKind::Call { callee, args } = &dist.kind else {
            return Err(self.err(Code::NotADistribution, dist.span, "expected a distribution", "here"));
        };
        let Some(f) = Family::from_name(&callee.name) else {
            return Err(self.err(
                Code::UnknownDistribution,
                callee.span,
                format!("unknown distribution `{}`", callee.name),
                "here",
            ));
        };
        let x = self.expr(lhs)?;
        if self.purpose == Purpose::Forward && self.on_params.contains(&x) {
            // A prior, or a parameter's hierarchical density: not observed, not predicted.
            return Ok(());
        }
        let params = self.dist_args(f, args)?;
        let params = self.along_rows(f, x, params, dist.span)?;
        self.check_support(f, x, &params, lhs)?;
        if self.purpose == Purpose::Forward {
            let (name, index) = match &lhs.kind {
                ExprKind::Index { base, indices } if base.as_name().is_some() => {
                    // `y[t]`, `y[idx]`, `y[:, 0]`: the positions in `y` (row-major) of the
                    // elements observed, the same indexing applied to the positions 0, 1, ...
                    let dims = base.as_name().and_then(|n| self.data.get(n)).map(|d| d.dims.clone());
                    let index = match dims {
                        Some(dims) if !dims.is_empty() => {
                            let len: usize = dims.iter().product();
                            let positions = self.constant((0..len).map(|i| i as f64).collect(), dims.clone(), true);
                            let (ix, idx) = self.index_spec(indices, &dims, lhs.span)?;
                            let mut args = vec![positions];
                            args.extend(idx);
                            Some(self.op(Prim::Index(ix), &args, lhs.span)?)
                        }
                        _ => None,
                    };
                    (base.as_name().unwrap_or_default().to_string(), index)
                }
                _ => (lhs.as_name().map(str::to_string).unwrap_or_else(|| crate::syntax::print::expr(lhs)), None),
            };
            // Every value a site reads is copied into the site's block unless it is a
            // constant, so that each has one copy per execution of the site.
            let here = self.cur;
            let local = |lw: &mut Self, v: V| -> R<V> {
                if lw.p.info(v).block == here || lw.known.contains_key(&v) {
                    return Ok(v);
                }
                let shape = lw.p.info(v).shape.clone();
                lw.op(Prim::Reshape(shape), &[v], span)
            };
            let x = local(self, x)?;
            let mut args = Vec::with_capacity(params.len());
            for v in params {
                args.push(local(self, v)?);
            }
            let index = match index {
                Some(i) => Some(local(self, i)?),
                None => None,
            };
            self.p.sites.push(crate::ir::Site { name, family: f, lhs: x, args, index, span });
            return Ok(());
        }
        let mut all = vec![x];
        all.extend(params);
        let lp = self.op(Prim::LogDensity(f), &all, span)?;
        self.add_target(lp, span)?;
        Ok(())
    }

    /// An elementwise family's vector argument of a matrix variate's column count, made the
    /// variate's shape (the vector repeated along its rows, as arithmetic broadcasts it), so
    /// that every consumer of the density sees one value per element.
    fn along_rows(&mut self, f: Family, x: V, params: Vec<V>, span: Span) -> R<Vec<V>> {
        let xs = self.p.info(x).shape.clone();
        if !f.is_elementwise() || xs.len() != 2 {
            return Ok(params);
        }
        let mut out = Vec::with_capacity(params.len());
        for v in params {
            let vs = self.p.info(v).shape.clone();
            if vs.len() == 1 && vs[0] == xs[1] && xs[1] > 1 {
                let zero = self.lit(0.0, false);
                let zeros = self.op(Prim::Fill(xs.clone()), &[zero], span)?;
                out.push(self.op(Prim::Binary(Bin::Add), &[zeros, v], span)?);
            } else {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Distribution arguments in parameter order (named ones placed by name).
    fn dist_args(&mut self, f: Family, args: &[Arg]) -> R<Vec<V>> {
        let names = crate::sema::builtins::distribution(f.name()).map(|d| d.params).unwrap_or(&[]);
        let mut slots: Vec<Option<V>> = vec![None; names.len()];
        let mut next = 0;
        for a in args {
            let v = self.expr(&a.value)?;
            let pos = match &a.name {
                Some(n) => names.iter().position(|(p, _)| *p == n.name).unwrap_or(usize::MAX),
                None => {
                    next += 1;
                    next - 1
                }
            };
            // A parameter known now (a literal, or computed from data) must be in its domain.
            if f.positive_params().contains(&pos) {
                if let Some(bad) = self.known.get(&v).and_then(|vals| vals.iter().find(|x| !(**x > 0.0)).copied()) {
                    let name = names.get(pos).map(|(n, _)| *n).unwrap_or("parameter");
                    return Err(self.err(
                        Code::BadDistArg,
                        a.value.span,
                        format!("`{}`'s {name} is {bad} here; it must be positive", f.name()),
                        "not positive",
                    ));
                }
            }
            if let Some(s) = slots.get_mut(pos) {
                *s = Some(v);
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// A discrete variate known from data must lie in its distribution's support (category
    /// labels in 0..K, bernoulli outcomes 0 or 1, counts at least 0 and at most the trials).
    fn check_support(&mut self, f: Family, x: V, params: &[V], at: &Expr) -> R<()> {
        if let Some(vals) = self.known.get(&x).cloned() {
            return self.check_support_of(f, &vals, None, params, at);
        }
        // `y[n] ~ f(...)` in a loop over data `y`: its values at the indices the loop reaches
        // (not under a branch on the data, which may skip rows that code a missing value).
        let ExprKind::Index { base, indices } = &at.kind else { return Ok(()) };
        if self.dynamic_ifs > 0 {
            return Ok(());
        }
        let [Index::Single(ie)] = indices.as_slice() else { return Ok(()) };
        let (Some(Bound::Value(bv)), Some(Bound::Value(iv))) =
            (base.as_name().and_then(|n| self.lookup(n)), ie.as_name().and_then(|n| self.lookup(n)))
        else {
            return Ok(());
        };
        let (Some(all), Some(reached)) = (self.known.get(&bv), self.possible.get(&iv)) else { return Ok(()) };
        if self.p.info(bv).shape.len() != 1 || !self.p.info(x).shape.is_empty() {
            return Ok(());
        }
        let positions: Vec<usize> = reached
            .iter()
            .map(|k| *k as usize)
            .filter(|k| *k < all.len())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let vals: Vec<f64> = positions.iter().map(|k| all[*k]).collect();
        self.check_support_of(f, &vals, Some(&positions), params, base)
    }

    /// `vals` (at data positions `positions`, or 0, 1, ...) against `f`'s support.
    fn check_support_of(
        &mut self,
        f: Family,
        vals: &[f64],
        positions: Option<&[usize]>,
        params: &[V],
        at: &Expr,
    ) -> R<()> {
        let k_of = |lw: &Self, v: Option<&V>| v.and_then(|v| lw.p.info(*v).shape.last().copied());
        let trials = params.first().and_then(|v| self.known.get(v).cloned());
        let ok = |i: usize, y: f64| -> Option<String> {
            let int = y.fract() == 0.0;
            match f {
                Family::Categorical | Family::CategoricalLogit => {
                    let k = k_of(self, params.first())?;
                    (!(int && y >= 0.0 && (y as usize) < k))
                        .then(|| format!("a category label from 0 to {} (one of its {k} classes)", k.saturating_sub(1)))
                }
                Family::OrderedLogistic => {
                    // K − 1 cutpoints: K ordered classes.
                    let k = k_of(self, params.get(1))? + 1;
                    (!(int && y >= 0.0 && (y as usize) < k))
                        .then(|| format!("a label from 0 to {} (one of its {k} ordered classes)", k - 1))
                }
                Family::Bernoulli | Family::BernoulliLogit => (!(y == 0.0 || y == 1.0)).then(|| "0 or 1".to_string()),
                Family::Poisson
                | Family::PoissonLog
                | Family::NegBinomial2
                | Family::NegBinomial
                | Family::NegBinomial2Log => (!(int && y >= 0.0)).then(|| "a count, 0 or more".to_string()),
                Family::Binomial | Family::BinomialLogit | Family::BetaBinomial => {
                    let n = trials
                        .as_ref()
                        .map(|t| if t.len() == 1 { t[0] } else { t.get(i).copied().unwrap_or(f64::INFINITY) })
                        .unwrap_or(f64::INFINITY);
                    (!(int && y >= 0.0 && y <= n)).then(|| format!("a count from 0 to {n} (the trials)"))
                }
                _ => None,
            }
        };
        for (i, y) in vals.iter().enumerate() {
            if let Some(want) = ok(i, *y) {
                let what = match at.as_name() {
                    Some(n) if vals.len() > 1 || positions.is_some() => {
                        format!("data `{n}[{}]`", positions.map_or(i, |p| p[i]))
                    }
                    Some(n) => format!("data `{n}`"),
                    None => "this value".to_string(),
                };
                // Labels from 1 to K are the commonest slip.
                let categorical = matches!(f, Family::Categorical | Family::CategoricalLogit);
                let k = match f {
                    // K − 1 cutpoints: K ordered classes.
                    Family::OrderedLogistic => k_of(self, params.get(1)).map_or(0, |c| c + 1),
                    _ => k_of(self, params.first()).unwrap_or(0),
                } as f64;
                let labelled = categorical || f == Family::OrderedLogistic;
                let help = if labelled && vals.iter().all(|v| *v >= 1.0 && *v <= k) {
                    Some(
                        "labels count from 0 here, and these run from 1 to the number of classes: subtract 1"
                            .to_string(),
                    )
                } else if categorical {
                    Some(format!("the {k} columns of `{}`'s argument are the classes; a label must name one", f.name()))
                } else {
                    None
                };
                self.diags.push(
                    Diagnostic::error(
                        Code::DataOutOfRange,
                        at.span,
                        format!("{what} is {y}, but `{}` needs {want}", f.name()),
                    )
                    .with_label("outside the distribution's support")
                    .with_help_opt(help),
                );
                return Err(Fail);
            }
        }
        Ok(())
    }

    // ---- expressions ----

    fn expr(&mut self, e: &Expr) -> R<V> {
        let span = e.span;
        match &e.kind {
            ExprKind::Int(v) => Ok(self.lit(*v as f64, true)),
            ExprKind::Real(v) => Ok(self.lit(*v, false)),
            ExprKind::Paren(x) => self.expr(x),
            ExprKind::Error => Err(Fail),
            ExprKind::Name(n) => match self.lookup(n) {
                Some(Bound::Value(v)) => Ok(v),
                Some(Bound::Slot(s)) => self.op(Prim::Load(s, vec![]), &[], span),
                None if self.failed_lets.contains(n) => Err(Fail),
                None => Err(self.err(Code::UnknownName, span, format!("unknown name `{n}`"), "not declared")),
            },
            ExprKind::Unary { op, operand } => {
                let v = self.expr(operand)?;
                match op {
                    UnOp::Plus => Ok(v),
                    UnOp::Neg => self.op(Prim::Unary(Un::Neg), &[v], span),
                    UnOp::Not => self.op(Prim::Unary(Un::Not), &[v], span),
                }
            }
            ExprKind::Binary { op: BinOp::MatMul, lhs, rhs }
                if rhs.as_name().is_some_and(|n| self.local.contains_key(n)) =>
            {
                let a = self.expr(lhs)?;
                self.local_matmul(a, rhs.as_name().unwrap_or_default(), span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.expr(lhs)?, self.expr(rhs)?);
                let both_int = self.p.info(a).int && self.p.info(b).int;
                let prim = match op {
                    BinOp::MatMul => Prim::MatMul,
                    BinOp::Add => Prim::Binary(Bin::Add),
                    BinOp::Sub => Prim::Binary(Bin::Sub),
                    BinOp::Mul => Prim::Binary(Bin::Mul),
                    BinOp::Div if both_int => Prim::Binary(Bin::IntDiv),
                    BinOp::Div => Prim::Binary(Bin::Div),
                    BinOp::Mod => Prim::Binary(Bin::Mod),
                    BinOp::Pow => Prim::Binary(Bin::Pow),
                    BinOp::Eq => Prim::Binary(Bin::Eq),
                    BinOp::Ne => Prim::Binary(Bin::Ne),
                    BinOp::Lt => Prim::Binary(Bin::Lt),
                    BinOp::Le => Prim::Binary(Bin::Le),
                    BinOp::Gt => Prim::Binary(Bin::Gt),
                    BinOp::Ge => Prim::Binary(Bin::Ge),
                    BinOp::And => Prim::Binary(Bin::And),
                    BinOp::Or => Prim::Binary(Bin::Or),
                };
                self.op(prim, &[a, b], span)
            }
            ExprKind::Cond { cond, then, else_ } => {
                let c = self.expr(cond)?;
                if let Some(k) = self.int_const(c) {
                    return if k != 0 { self.expr(then) } else { self.expr(else_) };
                }
                // A condition on the parameters keeps both branches (the density must stay one
                // smooth expression, as `select` is); one on data and loop indices branches.
                let on_data = !self.on_params.contains(&c) && self.p.info(c).shape.is_empty();
                if on_data && (reads_index(then) || reads_index(else_)) {
                    return self.lazy_cond(c, then, else_, span);
                }
                let (a, b) = (self.expr(then)?, self.expr(else_)?);
                self.op(Prim::Select, &[c, a, b], span)
            }
            ExprKind::Index { base, indices } => {
                if let Some(Bound::Slot(s)) = base.as_name().and_then(|n| self.lookup(n)) {
                    let shape = self.p.slots[s.0 as usize].shape.clone();
                    let (ix, idx) = self.index_spec(indices, &shape, span)?;
                    return self.op(Prim::Load(s, ix), &idx, span);
                }
                let b = self.expr(base)?;
                let shape = self.p.info(b).shape.clone();
                let (ix, idx) = self.index_spec(indices, &shape, span)?;
                let mut args = vec![b];
                args.extend(idx);
                self.op(Prim::Index(ix), &args, span)
            }
            ExprKind::Call { callee, args } => self.call(callee, args, span),
        }
    }

    /// `c ? a : b` whose branches index: only the branch taken runs, as an `if` statement's
    /// would, so an index the condition guards (`t > 0 ? y[t - 1] : 0`) is never read out of
    /// range. The value passes through a slot each branch stores to.
    fn lazy_cond(&mut self, c: V, then: &Expr, else_: &Expr, span: Span) -> R<V> {
        let arm = |lw: &mut Self, e: &Expr| -> R<(BlockId, V)> {
            let block = lw.new_block();
            let saved = lw.cur;
            lw.cur = block;
            lw.dynamic_ifs += 1;
            let r = lw.expr(e);
            lw.dynamic_ifs -= 1;
            lw.cur = saved;
            r.map(|v| (block, v))
        };
        let (tb, a) = arm(self, then)?;
        let (eb, b) = arm(self, else_)?;
        let (sa, sb) = (self.p.info(a).shape.clone(), self.p.info(b).shape.clone());
        let shape = match (sa.is_empty(), sb.is_empty()) {
            _ if sa == sb => sa,
            (true, false) => sb,
            (false, true) => sa,
            _ => {
                return Err(self.err(
                    Code::ShapeMismatch,
                    span,
                    format!("the branches of `?:` differ in shape: {sa:?} and {sb:?}"),
                    "both branches must have one shape",
                ))
            }
        };
        let int = self.p.info(a).int && self.p.info(b).int;
        self.p.slots.push(SlotInfo { shape: shape.clone(), int, name: "?:".into() });
        let slot = Slot(self.p.slots.len() as u32 - 1);
        self.push(Inst::Init { slot, value: None });
        for (block, v) in [(tb, a), (eb, b)] {
            let saved = self.cur;
            self.cur = block;
            // A scalar branch of a vector `?:` fills the slot's every element.
            let v = if self.p.info(v).shape == shape {
                v
            } else {
                let zeros = self.constant(vec![0.0; shape.iter().product()], shape.clone(), true);
                self.op(Prim::Binary(Bin::Add), &[v, zeros], span)?
            };
            if self.on_params.contains(&v) {
                self.slots_on_params.insert(slot);
            }
            if self.on_rows.contains(&v) {
                self.slots_on_rows.insert(slot);
            }
            self.push(Inst::Store { slot, ix: vec![], index: vec![], value: v });
            self.cur = saved;
        }
        self.push(Inst::If { cond: c, then: tb, else_: eb });
        self.op(Prim::Load(slot, vec![]), &[], span)
    }

    /// An index known now (a literal, or from data) must lie in 0..dim: checked here, naming
    /// the offending element.
    fn known_index_in_range(&mut self, v: V, e: &Expr, dim: usize) -> R<()> {
        if let (None, Some(vals), 0) = (self.known.get(&v), self.possible.get(&v), self.dynamic_ifs) {
            let Some(bad) = vals.iter().find(|x| !(**x >= 0.0 && (**x as usize) < dim)) else {
                return Ok(());
            };
            let bad = *bad;
            let what = e.as_name().map_or("this index".to_string(), |n| format!("`{n}`"));
            let msg = format!(
                "{what} reaches {bad} as its loop runs, outside 0..{dim} for the dimension it indexes (indices count from 0)"
            );
            self.diags.push(
                Diagnostic::error(Code::BindIndex, e.span, msg)
                    .with_label(format!("an index into a dimension of size {dim}"))
                    .with_help("loop bounds and indices computed from the data reach outside a container"),
            );
            return Err(Fail);
        }
        let Some(vals) = self.known.get(&v) else { return Ok(()) };
        let Some((k, bad)) =
            vals.iter().enumerate().find(|(_, x)| !(**x >= 0.0 && x.fract() == 0.0 && (**x as usize) < dim))
        else {
            return Ok(());
        };
        let what = match e.as_name() {
            Some(n) if vals.len() > 1 => format!("`{n}[{k}]`"),
            Some(n) => format!("`{n}`"),
            None => "this index".to_string(),
        };
        let bad = *bad;
        Err(self.err(
            Code::BindIndex,
            e.span,
            format!("{what} is {bad}, outside 0..{dim} for the dimension it indexes (indices count from 0)"),
            format!("an index into a dimension of size {dim}"),
        ))
    }

    /// The index positions and their int arguments.
    fn index_spec(&mut self, indices: &[Index], shape: &[usize], span: Span) -> R<(Vec<Ix>, Vec<V>)> {
        let mut ix = Vec::new();
        let mut args = Vec::new();
        for (d, i) in indices.iter().enumerate() {
            let dim = shape.get(d).copied().unwrap_or(0);
            match i {
                Index::All => ix.push(Ix::All),
                Index::Single(e) => {
                    let v = self.expr(e)?;
                    self.known_index_in_range(v, e, dim)?;
                    ix.push(if self.p.info(v).shape.is_empty() { Ix::Single } else { Ix::Gather });
                    args.push(v);
                }
                Index::Range(a, b) => {
                    let lo = match a {
                        Some(e) => self.expr(e)?,
                        None => self.lit(0.0, true),
                    };
                    let hi = match b {
                        Some(e) => self.expr(e)?,
                        None => self.lit(dim as f64, true),
                    };
                    let len = match (self.affine.get(&hi), self.affine.get(&lo)) {
                        (Some(h), Some(l)) => h.combine(l, -1).and_then(|a| a.as_const()),
                        _ => None,
                    };
                    let Some(len) = len.filter(|l| *l >= 0) else {
                        return Err(self.err(
                            Code::Unsupported,
                            span,
                            "a slice's length must be known when the data is read",
                            "its bounds do not differ by a fixed amount",
                        ));
                    };
                    ix.push(Ix::Range(len as usize));
                    args.push(lo);
                }
            }
        }
        Ok((ix, args))
    }

    fn call(&mut self, callee: &Ident, args: &[Arg], span: Span) -> R<V> {
        let name = callee.name.as_str();
        // Distributions' function forms: a draw, a log density, a log CDF.
        use crate::sema::builtins::{dist_function, DistFn};
        if let Some((f, kind)) = dist_function(name).and_then(|(d, kind, _)| Some((Family::from_name(d.name)?, kind))) {
            if kind == DistFn::Rng && f == Family::LkjCorrCholesky {
                // `lkj_corr_cholesky_rng(K, eta)`: K, known when the data is read, sizes the draw.
                let k = self.expr(&args[0].value)?;
                let Some(k) = self.int_const(k).filter(|k| *k >= 1) else {
                    return Err(self.err(
                        Code::SizeNotData,
                        args[0].value.span,
                        "the size of a correlation factor must be an int of 1 or more, known when the data is read",
                        "not a positive size",
                    ));
                };
                let params = self.dist_args(f, &args[1..])?;
                return self.op(Prim::Rng(f, vec![k as usize, k as usize]), &params, span);
            }
            if kind == DistFn::Rng {
                let params = self.dist_args(f, args)?;
                let shape = rng_shape(f, &params.iter().map(|v| self.p.info(*v).shape.clone()).collect::<Vec<_>>());
                return self.op(Prim::Rng(f, shape), &params, span);
            }
            let x = self.expr(&args[0].value)?;
            let params = self.dist_args(f, &args[1..])?;
            let params = self.along_rows(f, x, params, span)?;
            let mut all = vec![x];
            let prim = match kind {
                // A CDF is defined everywhere: no support to check.
                DistFn::LogCdf(upper) => Prim::LogCdf(f, upper),
                _ => {
                    self.check_support(f, x, &params, &args[0].value)?;
                    Prim::LogDensity(f)
                }
            };
            all.extend(params);
            return self.op(prim, &all, span);
        }
        if let Some(f) = self.funcs.get(name) {
            let f = f.clone();
            return self.inline(&f, args, span);
        }
        let vals: Vec<V> = args.iter().map(|a| self.expr(&a.value)).collect::<R<Vec<V>>>()?;
        let n = vals.len();
        let shape = |lw: &Self, i: usize| lw.p.info(vals[i]).shape.clone();
        let Some(func) = Func::from_name(name) else {
            return Err(self.err(
                Code::Unsupported,
                span,
                format!("`{name}` is not a function the compiler knows"),
                "here",
            ));
        };
        let prim = match (func, n) {
            (Func::Identity, 1) => return Ok(vals[0]),
            (Func::Dropout, 2) => return self.dropout(vals[0], vals[1], &args[1].value, span),
            (Func::Join, _) => return self.join(&vals, span),
            (Func::Elementwise(u), 1) => Prim::Unary(u),
            (Func::Pow, 2) => Prim::Binary(Bin::Pow),
            (Func::Min, 1) => Prim::Reduce(Red::Min),
            (Func::Max, 1) => Prim::Reduce(Red::Max),
            (Func::Min, 2) => Prim::Binary(Bin::Min),
            (Func::Max, 2) => Prim::Binary(Bin::Max),
            (Func::LogSumExp, 1) => Prim::Reduce(Red::LogSumExp),
            (Func::LogSumExp, 2) => Prim::Binary(Bin::LogSumExp),
            (Func::Sum, 1) => Prim::Reduce(Red::Sum),
            (Func::Mean, 1) => Prim::Reduce(Red::Mean),
            (Func::Sd, 1) => Prim::Reduce(Red::Sd),
            (Func::Variance, 1) => Prim::Reduce(Red::Variance),
            (Func::Prod, 1) => Prim::Reduce(Red::Prod),
            (Func::LogMix, 3) => Prim::LogMix,
            (Func::LogMix, 2) => Prim::LogMixVec,
            (Func::Softmax, 1) => Prim::Softmax,
            (Func::LogSoftmax, 1) => Prim::LogSoftmax,
            (Func::LayerNorm, 1) => Prim::LayerNorm,
            (Func::Dot, 2) => Prim::MatMul,
            (Func::Transpose, 1) => Prim::Transpose,
            (Func::ColMeans, 1) => Prim::ColMeans,
            (Func::ColSums, 1) => Prim::ColSums,
            (Func::RowMeans, 1) => Prim::RowMeans,
            (Func::RowSums, 1) => Prim::RowSums,
            (Func::DiagMatrix, 1) => Prim::DiagMatrix,
            (Func::Diagonal, 1) => Prim::Diagonal,
            (Func::Cholesky, 1) => Prim::Cholesky,
            (Func::GpExpQuadCov, 3) => Prim::GpExpQuadCov,
            (Func::ToVector, 1) => Prim::Reshape(vec![shape(self, 0).iter().product()]),
            (Func::Flatten, 1) => {
                let s = shape(self, 0);
                Prim::Reshape(vec![s.first().copied().unwrap_or(1), s.iter().skip(1).product()])
            }
            (Func::Convolve2d, 5) => {
                let (stride, padding) = (self.size_arg(vals[3], span)?, self.size_arg(vals[4], span)?);
                return self.op(Prim::Conv2d { stride, padding }, &vals[..3], span);
            }
            (Func::MaxPool2d | Func::AvgPool2d, 2) => {
                let k = self.size_arg(vals[1], span)?;
                let pool = if func == Func::MaxPool2d { prim::Pool::Max } else { prim::Pool::Avg };
                return self.op(Prim::Pool2d(pool, k), &vals[..1], span);
            }
            (Func::Col | Func::Row, 2) => {
                let (axis, ix) = if func == Func::Col { (1, vec![Ix::All, Ix::Single]) } else { (0, vec![Ix::Single]) };
                let dim = shape(self, 0).get(axis).copied().unwrap_or(1);
                self.known_index_in_range(vals[1], &args[1].value, dim)?;
                return self.op(Prim::Index(ix), &vals, span);
            }
            (Func::Rows | Func::Cols | Func::Size, 1) => {
                let s = shape(self, 0);
                let v = match func {
                    Func::Rows => s.first().copied().unwrap_or(1),
                    Func::Cols => s.get(1).copied().unwrap_or(1),
                    _ if s.len() == 2 => s[0] * s[1],
                    _ => s.first().copied().unwrap_or(1),
                };
                return Ok(self.lit(v as f64, true));
            }
            (Func::RepVector, 2) | (Func::RepMatrix, 3) | (Func::Zeros | Func::Ones, 1 | 2) => {
                let (fill, sizes) = match func {
                    Func::Zeros => (self.lit(0.0, false), &vals[..]),
                    Func::Ones => (self.lit(1.0, false), &vals[..]),
                    _ => (vals[0], &vals[1..]),
                };
                let mut shape = Vec::new();
                for s in sizes {
                    match self.int_const(*s) {
                        Some(k) if k >= 0 => shape.push(k as usize),
                        _ => {
                            return Err(self.err(
                                Code::SizeNotData,
                                span,
                                "this size must be known when the data is read",
                                "not a constant",
                            ))
                        }
                    }
                }
                return self.op(Prim::Fill(shape), &[fill], span);
            }
            // The checker has refused every other count of arguments.
            (
                Func::Identity
                | Func::Dropout
                | Func::Elementwise(_)
                | Func::Pow
                | Func::Min
                | Func::Max
                | Func::LogSumExp
                | Func::Sum
                | Func::Mean
                | Func::Sd
                | Func::Variance
                | Func::Prod
                | Func::LogMix
                | Func::Softmax
                | Func::LogSoftmax
                | Func::LayerNorm
                | Func::Dot
                | Func::Transpose
                | Func::ColMeans
                | Func::ColSums
                | Func::RowMeans
                | Func::RowSums
                | Func::DiagMatrix
                | Func::Diagonal
                | Func::Cholesky
                | Func::GpExpQuadCov
                | Func::ToVector
                | Func::Col
                | Func::Row
                | Func::Rows
                | Func::Cols
                | Func::Size
                | Func::RepVector
                | Func::RepMatrix
                | Func::Zeros
                | Func::Ones
                | Func::Flatten
                | Func::Convolve2d
                | Func::MaxPool2d
                | Func::AvgPool2d,
                _,
            ) => {
                return Err(self.err(
                    Code::Unsupported,
                    span,
                    format!("`{name}` with {n} arguments is not supported by the compiler"),
                    "here",
                ));
            }
        };
        self.op(prim, &vals, span)
    }

    /// A size argument (a stride, a padding, a window), which must be a number when the model
    /// is compiled.
    fn size_arg(&mut self, v: V, span: Span) -> R<usize> {
        match self.int_const(v) {
            Some(k) if k >= 0 => Ok(k as usize),
            _ => Err(self.err(
                Code::SizeNotData,
                span,
                "this size must be known when the data is read",
                "not a constant",
            )),
        }
    }

    /// Inline a `fn`: its arguments bound, its body lowered here. A `return` inside an `if`
    /// on a value not known now becomes a select of both branches (the function is pure).
    fn inline(&mut self, f: &FuncDef, args: &[Arg], span: Span) -> R<V> {
        if self.inline_depth > 64 {
            return Err(self.err(
                Code::RecursionLimit,
                span,
                format!("`{}` calls itself more than 64 deep", f.name.name),
                "while inlining",
            ));
        }
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.expr(&a.value)?);
        }
        self.scopes.push(HashMap::new());
        for (d, v) in f.args.iter().zip(vals) {
            self.bind(&d.name.name, Bound::Value(v));
            // Shape variables (a size name that is neither data nor an argument) as ints:
            // the sizes of this call's argument.
            let shape = self.p.info(v).shape.clone();
            for (k, dim) in type_dims(&d.ty).0.iter().enumerate() {
                let ExprKind::Name(sv) = &dim.kind else { continue };
                let global = self.scopes.first().is_some_and(|g| g.contains_key(sv));
                if !global && !f.args.iter().any(|a| a.name.name == *sv) {
                    if let Some(&size) = shape.get(k) {
                        let lit = self.lit(size as f64, true);
                        self.bind(sv, Bound::Value(lit));
                    }
                }
            }
        }
        // Defaults for arguments not given.
        for d in f.args.iter().skip(args.len()) {
            if let Some(def) = &d.default {
                let v = self.expr(def)?;
                self.bind(&d.name.name, Bound::Value(v));
            }
        }
        self.inline_depth += 1;
        let r = self.fn_body(&f.body, span);
        self.inline_depth -= 1;
        self.scopes.pop();
        r
    }

    fn fn_body(&mut self, body: &[Stmt], span: Span) -> R<V> {
        for (i, s) in body.iter().enumerate() {
            match &s.kind {
                StmtKind::Return { value } => return self.expr(value),
                StmtKind::If { cond, then, else_ }
                    if crate::sema::check::always_returns(then)
                        || else_.as_ref().is_some_and(|e| crate::sema::check::always_returns(e)) =>
                {
                    let c = self.expr(cond)?;
                    let rest = &body[i + 1..];
                    let then_body: Vec<Stmt> = then.to_vec();
                    let else_body: Vec<Stmt> = match else_ {
                        Some(e) => e.iter().cloned().chain(rest.iter().cloned()).collect(),
                        None => rest.to_vec(),
                    };
                    if let Some(k) = self.int_const(c) {
                        return self.fn_body(if k != 0 { &then_body } else { &else_body }, span);
                    }
                    self.scopes.push(HashMap::new());
                    let a = self.fn_body(&then_body, span);
                    self.scopes.pop();
                    self.scopes.push(HashMap::new());
                    let b = self.fn_body(&else_body, span);
                    self.scopes.pop();
                    return self.op(Prim::Select, &[c, a?, b?], span);
                }
                _ => self.stmt(s, None)?,
            }
        }
        Err(self.err(Code::MissingReturn, span, "this function call ends without a value", "here"))
    }
}

/// The shape of draws from an elementwise family: the broadcast of its arguments' shapes.
fn rng_shape(f: Family, params: &[Vec<usize>]) -> Vec<usize> {
    match f {
        Family::Dirichlet | Family::MultiNormal | Family::MultiNormalCholesky => {
            params.first().cloned().unwrap_or_default()
        }
        Family::LkjCorrCholesky => vec![],
        Family::Categorical => vec![],
        Family::OrderedLogistic => params.first().cloned().unwrap_or_default(),
        Family::CategoricalLogit => match params.first() {
            Some(s) if s.len() == 2 => vec![s[0]],
            _ => vec![],
        },
        _ => params.iter().max_by_key(|s| s.iter().product::<usize>()).cloned().unwrap_or_default(),
    }
}

/// Whether `e` indexes anything.
fn reads_index(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Index { .. }) || e.kind.children().any(reads_index)
}

/// This machine's memory in bytes (Linux's MemTotal; elsewhere 64 GiB).
fn memory_bytes() -> f64 {
    static MEMORY: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024.0)
            })
            .unwrap_or(64.0 * 1024.0 * 1024.0 * 1024.0)
    })
}

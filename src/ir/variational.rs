//! What the compiler decides for variational training (Bayes by Backprop) with a mean-field
//! Gaussian q(θ) = Π N(μᵢ, σᵢ²):
//!
//! - A parameter whose prior is `normal(a, b)` with numbers for `a` and `b`, declared without
//!   bounds, has a KL term KL(q‖p) in closed form: its prior is left out of the program and
//!   the trainer adds the exact KL and its gradient ([`Plan::gaussian`]).
//! - Of those, a matrix `W` used only as the right operand of `@` is trained by the local
//!   reparameterisation trick (Kingma et al. 2015): the program takes W's means M and
//!   standard deviations S, and `A @ W` on a minibatch's rows becomes
//!   `A @ M + sqrt((A ⊙ A) @ (S ⊙ S)) ⊙ ε`, with ε a fresh standard normal per row and unit.
//!   Every row's pre-activation then has its exact distribution under q, with noise that is
//!   independent across rows, so the gradient's variance falls with the batch size
//!   ([`Plan::local`]). Where `A` is not per row, W is drawn once: `M + S ⊙ ε`.

use crate::sema::elaborate::Elaborated;
use crate::syntax::ast::{Expr, ExprKind, Stmt, StmtKind, UnOp};

/// The compiler's choices for one model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Parameters with a Gaussian prior of constant location and scale: (name, loc, scale).
    pub gaussian: Vec<(String, f64, f64)>,
    /// Matrices among them used only as `A @ W`: the local reparameterisation applies.
    pub local: Vec<String>,
}

/// How a variational program's parameter vector is laid out: the model's unconstrained
/// vector (where a locally reparameterised matrix holds its means), then one block of
/// standard deviations per such matrix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// (parameter index, loc, scale) of each parameter whose prior the program leaves out.
    pub gaussian: Vec<(usize, f64, f64)>,
    /// (parameter index of the matrix, parameter index of its standard deviations).
    pub local: Vec<(usize, usize)>,
    /// The model's own parameters: the first `model_params` of the program's.
    pub model_params: usize,
}

/// The plan for `el`.
pub fn plan(el: &Elaborated) -> Plan {
    let ck = &el.checked;
    let mut plan = Plan::default();
    for d in &ck.params {
        let unbounded = d.decl.lower.is_none()
            && d.decl.upper.is_none()
            && d.decl.constraint == crate::sema::check::Constraint::None;
        let Some((loc, scale)) = d.prior.as_ref().and_then(constant_normal).filter(|_| unbounded) else {
            continue;
        };
        plan.gaussian.push((d.name.clone(), loc, scale));
        let (dims, _) = crate::data::type_dims(&d.type_expr);
        if dims.len() != 2 {
            continue;
        }
        // Every use of the name, and how many are `A @ name`.
        let (mut uses, mut matmul) = (0, 0);
        let mut visit = |e: &Expr| count(e, &d.name, &mut uses, &mut matmul);
        for s in &ck.model {
            stmt_exprs(s, &mut visit);
        }
        for other in ck.params.iter().filter(|o| o.name != d.name) {
            other.prior.iter().chain(&other.decl.lower).chain(&other.decl.upper).for_each(&mut visit);
        }
        if matmul > 0 && uses == matmul {
            plan.local.push(d.name.clone());
        }
    }
    plan
}

/// `normal(a, b)` with numbers a and b > 0.
fn constant_normal(e: &Expr) -> Option<(f64, f64)> {
    let ExprKind::Call { callee, args } = &e.kind else { return None };
    if callee.name != "normal" || args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
        return None;
    }
    let (loc, scale) = (number(&args[0].value)?, number(&args[1].value)?);
    (scale > 0.0).then_some((loc, scale))
}

fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Int(v) => Some(*v as f64),
        ExprKind::Real(v) => Some(*v),
        ExprKind::Paren(x) => number(x),
        ExprKind::Unary { op: UnOp::Neg, operand } => number(operand).map(|v| -v),
        ExprKind::Unary { op: UnOp::Plus, operand } => number(operand),
        _ => None,
    }
}

/// Count the uses of `name` in `e`, and those that are the right operand of `@`.
fn count(e: &Expr, name: &str, uses: &mut usize, matmul: &mut usize) {
    match &e.kind {
        ExprKind::Name(n) if n == name => *uses += 1,
        ExprKind::Binary { op: crate::syntax::ast::BinOp::MatMul, rhs, .. } if rhs.as_name() == Some(name) => {
            *matmul += 1;
        }
        _ => {}
    }
    for c in e.kind.children() {
        count(c, name, uses, matmul);
    }
}

/// Call `f` on every expression a statement holds, nested statements included.
fn stmt_exprs(s: &Stmt, f: &mut impl FnMut(&Expr)) {
    match &s.kind {
        StmtKind::Decl { prior, .. } | StmtKind::Param { prior, .. } => prior.iter().for_each(f),
        StmtKind::DeclInit { init, .. } => f(init),
        StmtKind::Let { value, .. } | StmtKind::Target { value } | StmtKind::Return { value } => f(value),
        StmtKind::Var { init, .. } => init.iter().for_each(f),
        StmtKind::Assign { lhs, rhs, .. } => {
            f(lhs);
            f(rhs);
        }
        StmtKind::Tilde { lhs, dist } => {
            f(lhs);
            f(dist);
        }
        StmtKind::For { lo, hi, body, .. } => {
            f(lo);
            f(hi);
            body.iter().for_each(|s| stmt_exprs(s, f));
        }
        StmtKind::If { cond, then, else_ } => {
            f(cond);
            then.iter().chain(else_.iter().flatten()).for_each(|s| stmt_exprs(s, f));
        }
        StmtKind::Error => {}
    }
}

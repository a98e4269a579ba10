//! Expression checking: names, operators (with SPEC §4 broadcasting), indexing.

use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::sema::builtins;
use crate::sema::check::{BindKind, Checker, Ctx, Info};
use crate::sema::ty::{Poly, Size, Ty, Variability};
use crate::source::Span;
use crate::syntax::ast::*;

impl<'a> Checker<'a> {
    pub fn check_expr(&mut self, e: &Expr) -> Info {
        match &e.kind {
            ExprKind::Int(v) => Info::int_const(*v),
            ExprKind::Real(_) => Info::new(Ty::Real, Variability::Const),
            ExprKind::Error => Info::error(),
            ExprKind::Paren(inner) => self.check_expr(inner),
            ExprKind::Name(n) => self.check_name(n, e.span),
            ExprKind::Call { callee, args } => self.check_call(callee, args, e.span),
            ExprKind::Index { base, indices } => self.check_index(base, indices, e.span),
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.check_expr(lhs);
                let r = self.check_expr(rhs);
                self.binary(*op, &l, &r, lhs.span, rhs.span, e.span)
            }
            ExprKind::Unary { op, operand } => {
                let i = self.check_expr(operand);
                self.unary(*op, &i, operand.span)
            }
            ExprKind::Cond { cond, then, else_ } => {
                let c = self.check_expr(cond);
                if !c.ty.is_error() && c.ty != Ty::Int {
                    self.error(
                        Diagnostic::error(
                            Code::IntRequired,
                            cond.span,
                            format!("a condition must be an int (0 is false), found {}", c.ty),
                        )
                        .with_label("not an int"),
                    );
                }
                let a = self.check_expr(then);
                let b = self.check_expr(else_);
                let var = c.var.max(a.var).max(b.var);
                if a.ty.is_error() || b.ty.is_error() {
                    return Info::new(if a.ty.is_error() { b.ty } else { a.ty }, var);
                }
                if a.ty.dims().len() != b.ty.dims().len() || !a.ty.is_numeric() || !b.ty.is_numeric() {
                    self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            e.span,
                            format!("the two branches differ: {} and {}", a.ty, b.ty),
                        )
                        .with_secondary(then.span, format!("{}", a.ty))
                        .with_secondary(else_.span, format!("{}", b.ty)),
                    );
                    return Info::new(Ty::Error, var);
                }
                let dims = self.broadcast_dims(&a.ty, &b.ty, then.span, else_.span, "?:");
                let ty = if a.ty.is_int_valued() && b.ty.is_int_valued() {
                    Ty::int_of_dims(&dims)
                } else {
                    Ty::real_of_dims(dims)
                };
                let int_val = match (&c.int_val.as_ref().and_then(Poly::as_const), &a.int_val, &b.int_val) {
                    (Some(cv), Some(x), Some(y)) => Some(if *cv != 0 { x.clone() } else { y.clone() }),
                    _ => None,
                };
                Info { ty, var, int_val }
            }
        }
    }

    fn check_name(&mut self, n: &str, span: Span) -> Info {
        if let Some(b) = self.lookup(n) {
            let info = Info { ty: b.ty.clone(), var: b.var, int_val: b.int_val.clone() };
            if b.kind == BindKind::Param && self.ctx != Ctx::Generated {
                self.params_read.insert(n.to_string());
            }
            return info;
        }
        // A function used as a value (an activation passed to a layer).
        if builtins::Func::from_name(n).is_some_and(builtins::Func::is_activation) {
            return Info::new(Ty::Func(Some(n.to_string())), Variability::Const);
        }
        if let Some(f) = self.funcs.get(n) {
            // Called with one argument (an activation): the others need defaults.
            if f.kind == FuncKind::Fn && !f.args.is_empty() && f.args[1..].iter().all(|a| a.default.is_some()) {
                return Info::new(Ty::Func(Some(n.to_string())), Variability::Const);
            }
            if f.kind == FuncKind::Fn {
                self.error(
                    Diagnostic::error(
                        Code::WrongKind,
                        span,
                        format!(
                            "`{n}` takes {} arguments, and a function passed as a value is called with one",
                            f.args.len()
                        ),
                    )
                    .with_label("used as a value")
                    .with_secondary(f.name.span, "declared here")
                    .with_help(
                        "give its other arguments defaults (`a: real = 0.1`), or wrap it in a `fn` of one argument",
                    ),
                );
                return Info::error();
            }
            if f.kind == FuncKind::Layer {
                self.error(
                    Diagnostic::error(
                        Code::WrongKind,
                        span,
                        format!("`{n}` is a layer; it is called, and cannot be used as a value"),
                    )
                    .with_label("not a value")
                    .with_secondary(f.name.span, "declared here")
                    .with_help(format!(
                        "call it where its output is needed (`let h = {n}(x, ...)`): each call declares its own weights"
                    )),
                );
                return Info::error();
            }
        }
        if builtins::distribution(n).is_some() {
            self.error(
                Diagnostic::error(Code::WrongKind, span, format!("`{n}` is a distribution; it needs its arguments"))
                    .with_label("not a value")
                    .with_help(format!("write `{n}(...)`")),
            );
            return Info::error();
        }
        if builtins::Func::from_name(n).is_some() {
            // A built-in that is not elementwise (`softmax`, `sum`) passed as a value, as a
            // layer's activation is.
            self.error(
                Diagnostic::error(
                    Code::WrongKind,
                    span,
                    format!("`{n}` is not an elementwise function, so it cannot be passed as a value (a layer's `act`)"),
                )
                .with_label("not elementwise")
                .with_help(format!(
                    "apply it to the layer's output instead (`{n}(dense(x, k))`), or pass an elementwise function (`tanh`, `relu`, `sigmoid`, `softplus`, ...)"
                )),
            );
            return Info::error();
        }
        if let (Ctx::Generated, Some(at)) = (self.ctx, self.model_locals.get(n).copied()) {
            self.error(
                Diagnostic::error(Code::UnknownName, span, format!("unknown name `{n}`: it is local to `model`"))
                    .with_label("not visible in `generated`")
                    .with_secondary(at, "bound in `model`")
                    .with_help("`generated` sees the data, the parameters and its own names, not `model`'s: compute it again here; a network's predictions come from `bnnc predict`"),
            );
            return Info::error();
        }
        let visible = self.visible_names();
        let mut d =
            Diagnostic::error(Code::UnknownName, span, format!("unknown name `{n}`")).with_label("not declared");
        let help = did_you_mean(n, visible.iter().map(String::as_str).chain(builtins::activation_names()));
        d = d.with_help_opt(help);
        if d.help.is_none() && self.ctx == crate::sema::check::Ctx::Params {
            d = d.with_help("a bound may only use data and parameters declared before it");
        }
        self.error(d);
        Info::error()
    }

    /// The dims of an elementwise combination (SPEC §4): scalars broadcast against anything,
    /// equal shapes combine, and a vector broadcasts along the rows of a matrix with the
    /// same column count.
    pub(super) fn broadcast_dims(&mut self, a: &Ty, b: &Ty, sa: Span, sb: Span, op: &str) -> Vec<Size> {
        let da = a.dims();
        let db = b.dims();
        if da.is_empty() {
            return db;
        }
        if db.is_empty() {
            return da;
        }
        let mismatch = |ck: &mut Self, help: Option<String>| {
            ck.error(
                Diagnostic::error(Code::ShapeMismatch, sa.to(sb), format!("`{op}` cannot combine {a} and {b}"))
                    .with_secondary(sa, format!("{a}"))
                    .with_secondary(sb, format!("{b}"))
                    .with_help_opt(help),
            );
        };
        if da.len() == db.len() {
            for (x, y) in da.iter().zip(db.iter()) {
                if x.differs(y) {
                    mismatch(self, None);
                    return da;
                }
            }
            // Prefer the known size where one side is unknown.
            return da
                .iter()
                .zip(db.iter())
                .map(|(x, y)| if *x == Size::Unknown { y.clone() } else { x.clone() })
                .collect();
        }
        let (m, v) = match (da.len(), db.len()) {
            (2, 1) => (&da, &db),
            (1, 2) => (&db, &da),
            _ => {
                mismatch(self, None);
                return if da.len() > db.len() { da } else { db };
            }
        };
        if m[1].differs(&v[0]) {
            let help = if !m[0].differs(&v[0]) {
                Some(format!("a vector broadcasts along the rows of a matrix, so its length must be the column count {}; to scale rows, use a matrix[{}, 1] or transpose", m[1], m[0]))
            } else {
                None
            };
            mismatch(self, help);
        }
        m.clone()
    }

    /// E0208, a warning: a number divided by an int that is not known now, both ints (`1 /
    /// N`): integer division, so 0 whenever the divisor is the larger, which a real weight
    /// or average was almost certainly not meant to be.
    fn warn_int_division(&mut self, l: &Info, r: &Info, span: Span) {
        let Some(c) = l.int_val.as_ref().and_then(Poly::as_const) else { return };
        if let Some(d) = r.int_val.as_ref().and_then(Poly::as_const) {
            // Two constants (`1 / 2`): a warning when the division drops a remainder.
            if d != 0 && c % d != 0 {
                self.diags.push(
                    Diagnostic::warning(
                        Code::IntDivision,
                        span,
                        format!("`{c} / {d}` divides ints, rounding towards zero: it is {}", c / d),
                    )
                    .with_label("integer division")
                    .with_help(format!("for a real quotient write `{c}.0 / {d}`")),
                );
            }
            return;
        }
        self.diags.push(
            Diagnostic::warning(
                Code::IntDivision,
                span,
                format!(
                    "`{c} / ...` divides ints, rounding towards zero: it is 0 whenever the divisor is larger than {}",
                    c.abs()
                ),
            )
            .with_label("integer division")
            .with_help(format!("for a real quotient write `{c}.0 / ...`")),
        );
    }

    pub(super) fn binary(&mut self, op: BinOp, l: &Info, r: &Info, sl: Span, sr: Span, span: Span) -> Info {
        let var = l.var.max(r.var);
        if l.ty.is_error() || r.ty.is_error() {
            return Info::new(Ty::Error, var);
        }
        for (i, s) in [(l, sl), (r, sr)] {
            if !i.ty.is_numeric() {
                let help = match &i.ty {
                    Ty::Dist(Some(d)) => Some(format!("`{d}(...)` is a distribution, not a number; for a draw use `{d}_rng(...)`, for a log density `{d}_lpdf(x, ...)`")),
                    Ty::Func(Some(f)) => Some(format!("`{f}` is a function: call it, `{f}(x)`")),
                    _ => None,
                };
                self.error(
                    Diagnostic::error(
                        Code::WrongKind,
                        s,
                        format!("`{}` needs numbers, found {}", op.symbol(), i.ty.kind_word()),
                    )
                    .with_label(format!("this is {}", i.ty))
                    .with_help_opt(help),
                );
                return Info::new(Ty::Error, var);
            }
        }
        let both_int = l.ty.is_int_valued() && r.ty.is_int_valued();
        if op == BinOp::Div && both_int {
            self.warn_int_division(l, r, span);
        }
        match op {
            BinOp::MatMul => self.matmul(l, r, sl, sr, span),
            BinOp::And | BinOp::Or => {
                for (i, s) in [(l, sl), (r, sr)] {
                    if !i.ty.is_int_valued() {
                        self.error(
                            Diagnostic::error(
                                Code::BadOperands,
                                s,
                                format!("`{}` works on ints (0 is false), found {}", op.symbol(), i.ty),
                            )
                            .with_label("not an int")
                            .with_help("compare first, as in `x > 0`"),
                        );
                        return Info::new(Ty::Error, var);
                    }
                }
                let dims = self.broadcast_dims(&l.ty, &r.ty, sl, sr, op.symbol());
                Info::new(Ty::int_of_dims(&dims), var)
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let dims = self.broadcast_dims(&l.ty, &r.ty, sl, sr, op.symbol());
                let int_val =
                    match (l.int_val.as_ref().and_then(Poly::as_const), r.int_val.as_ref().and_then(Poly::as_const)) {
                        (Some(a), Some(b)) => Some(Poly::constant(compare(op, a, b) as i64)),
                        _ => match (&l.int_val, &r.int_val, op) {
                            (Some(a), Some(b), BinOp::Eq) if a == b => Some(Poly::constant(1)),
                            (Some(a), Some(b), BinOp::Ne) if a == b => Some(Poly::constant(0)),
                            _ => None,
                        },
                    };
                Info { ty: Ty::int_of_dims(&dims), var, int_val: if dims.is_empty() { int_val } else { None } }
            }
            BinOp::Mod if !both_int => {
                self.error(
                    Diagnostic::error(
                        Code::BadOperands,
                        span,
                        format!("`%` works on ints, found {} and {}", l.ty, r.ty),
                    )
                    .with_label("not ints"),
                );
                Info::new(Ty::Error, var)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => {
                let dims = self.broadcast_dims(&l.ty, &r.ty, sl, sr, op.symbol());
                // Int arithmetic stays int (`/` is integer division, as in Stan); `^` is real.
                let int_result = both_int && op != BinOp::Pow;
                let ty = if int_result { Ty::int_of_dims(&dims) } else { Ty::real_of_dims(dims.clone()) };
                let int_val = if int_result && dims.is_empty() {
                    match (&l.int_val, &r.int_val) {
                        (Some(a), Some(b)) => match op {
                            BinOp::Add => a.add(b),
                            BinOp::Sub => a.sub(b),
                            BinOp::Mul => a.mul(b),
                            BinOp::Div => match (a.as_const(), b.as_const()) {
                                (Some(x), Some(y)) if y != 0 => x.checked_div(y).map(Poly::constant),
                                _ => None,
                            },
                            BinOp::Mod => match (a.as_const(), b.as_const()) {
                                (Some(x), Some(y)) if y != 0 => x.checked_rem(y).map(Poly::constant),
                                _ => None,
                            },
                            _ => None,
                        },
                        _ => None,
                    }
                } else {
                    None
                };
                Info { ty, var, int_val }
            }
        }
    }

    fn matmul(&mut self, l: &Info, r: &Info, sl: Span, sr: Span, span: Span) -> Info {
        let var = l.var.max(r.var);
        let err = |ck: &mut Self, help: &str| {
            ck.error(
                Diagnostic::error(Code::ShapeMismatch, span, format!("`@` cannot multiply {} by {}", l.ty, r.ty))
                    .with_secondary(sl, format!("{}", l.ty))
                    .with_secondary(sr, format!("{}", r.ty))
                    .with_help(help),
            );
            Info::new(Ty::Error, var)
        };
        let dl = l.ty.dims();
        let dr = r.ty.dims();
        if dl.is_empty()
            || dr.is_empty()
            || dl.len() > 2
            || dr.len() > 2
            || matches!(l.ty, Ty::Array(..))
            || matches!(r.ty, Ty::Array(..))
        {
            return err(
                self,
                "`@` is the matrix product of vectors and matrices; use `*` for elementwise or scalar products",
            );
        }
        let inner_l = dl.last().cloned().unwrap_or(Size::Unknown);
        let inner_r = dr[0].clone();
        if inner_l.differs(&inner_r) {
            let help = format!("the inner sizes must agree: {} on the left, {} on the right", inner_l, inner_r);
            return err(self, &help);
        }
        let ty = match (dl.len(), dr.len()) {
            (2, 2) => Ty::Matrix(dl[0].clone(), dr[1].clone()),
            (2, 1) => Ty::Vector(dl[0].clone()),
            (1, 2) => Ty::Vector(dr[1].clone()),
            _ => Ty::Real,
        };
        Info::new(ty, var)
    }

    fn unary(&mut self, op: UnOp, i: &Info, span: Span) -> Info {
        if i.ty.is_error() {
            return i.clone();
        }
        match op {
            UnOp::Not => {
                if !i.ty.is_int_valued() {
                    self.error(
                        Diagnostic::error(
                            Code::BadOperands,
                            span,
                            format!("`!` works on ints (0 is false), found {}", i.ty),
                        )
                        .with_label("not an int"),
                    );
                    return Info::error();
                }
                let v = i.int_val.as_ref().and_then(Poly::as_const).map(|c| Poly::constant((c == 0) as i64));
                Info { ty: i.ty.clone(), var: i.var, int_val: v }
            }
            UnOp::Neg | UnOp::Plus => {
                if !i.ty.is_numeric() {
                    self.error(
                        Diagnostic::error(
                            Code::WrongKind,
                            span,
                            format!("`{}` needs a number, found {}", op.symbol(), i.ty.kind_word()),
                        )
                        .with_label(format!("this is {}", i.ty)),
                    );
                    return Info::error();
                }
                let int_val = if op == UnOp::Neg { i.int_val.as_ref().and_then(Poly::neg) } else { i.int_val.clone() };
                Info { ty: i.ty.clone(), var: i.var, int_val }
            }
        }
    }

    fn check_index(&mut self, base: &Expr, indices: &[Index], span: Span) -> Info {
        let b = self.check_expr(base);
        if b.ty.is_error() {
            for i in indices {
                self.check_index_item(i);
            }
            return Info::new(Ty::Error, b.var);
        }
        let mut dims = b.ty.dims();
        if dims.is_empty() || !b.ty.is_numeric() {
            self.error(
                Diagnostic::error(Code::BadIndex, span, format!("cannot index {}", b.ty))
                    .with_label(format!("{} has no elements", b.ty.kind_word())),
            );
            return Info::error();
        }
        if indices.len() > dims.len() {
            self.error(
                Diagnostic::error(
                    Code::BadIndex,
                    span,
                    format!("too many indices for {}: {} given, {} allowed", b.ty, indices.len(), dims.len()),
                )
                .with_label("too many indices"),
            );
            return Info::error();
        }
        let mut var = b.var;
        let mut out: Vec<Size> = Vec::new();
        for (k, idx) in indices.iter().enumerate() {
            let (kept, v) = self.check_index_item(idx);
            var = var.max(v);
            match kept {
                IndexResult::Drop => {}
                IndexResult::Keep(s) => out.push(match s {
                    Some(s) => s,
                    None => dims[k].clone(),
                }),
                IndexResult::Range(lo, hi) => {
                    let lo = lo.unwrap_or(Size::constant(0));
                    let hi = hi.unwrap_or_else(|| dims[k].clone());
                    out.push(hi.sub(&lo));
                }
                IndexResult::Bad => return Info::new(Ty::Error, var),
            }
        }
        out.extend(dims.drain(indices.len()..));
        let ty = if b.ty.is_int_valued() {
            Ty::int_of_dims(&out)
        } else if matches!(b.ty, Ty::Array(..)) {
            // An array of vectors indexed down to a vector stays a vector.
            let mut t = &b.ty;
            let mut n = 0;
            while let Ty::Array(_, e) = t {
                t = e;
                n += 1;
            }
            let inner_dims = t.dims().len();
            if out.len() <= inner_dims {
                Ty::real_of_dims(out)
            } else {
                let outer = out.len() - inner_dims;
                let inner = Ty::real_of_dims(out[outer..].to_vec());
                let _ = n;
                out[..outer]
                    .iter()
                    .rev()
                    .fold(if inner_dims == 0 { Ty::Real } else { inner }, |t, d| Ty::Array(d.clone(), Box::new(t)))
            }
        } else {
            Ty::real_of_dims(out)
        };
        Info::new(ty, var)
    }

    fn check_index_item(&mut self, idx: &Index) -> (IndexResult, Variability) {
        match idx {
            Index::All => (IndexResult::Keep(None), Variability::Const),
            Index::Single(e) => {
                let i = self.check_expr(e);
                if i.ty.is_error() {
                    return (IndexResult::Bad, i.var);
                }
                match &i.ty {
                    Ty::Int => (IndexResult::Drop, i.var),
                    Ty::Array(n, inner) if **inner == Ty::Int => (IndexResult::Keep(Some(n.clone())), i.var),
                    other => {
                        self.error(
                            Diagnostic::error(
                                Code::IntRequired,
                                e.span,
                                format!("an index must be an int or an array of ints, found {other}"),
                            )
                            .with_label("not an int")
                            .with_help("indices are 0-based ints; a slice is written `a..b`"),
                        );
                        (IndexResult::Bad, i.var)
                    }
                }
            }
            Index::Range(a, b) => {
                let mut var = Variability::Const;
                let mut sizes = [None, None];
                for (slot, e) in [a, b].into_iter().enumerate() {
                    if let Some(e) = e {
                        let i = self.check_expr(e);
                        var = var.max(i.var);
                        if i.ty.is_error() {
                            return (IndexResult::Bad, var);
                        }
                        if i.ty != Ty::Int {
                            self.error(
                                Diagnostic::error(
                                    Code::IntRequired,
                                    e.span,
                                    format!("a slice bound must be an int, found {}", i.ty),
                                )
                                .with_label("not an int"),
                            );
                            return (IndexResult::Bad, var);
                        }
                        if i.var == Variability::Param {
                            self.error(
                                Diagnostic::error(
                                    Code::SizeNotData,
                                    e.span,
                                    "a slice bound cannot depend on a parameter",
                                )
                                .with_label("depends on a parameter"),
                            );
                        }
                        sizes[slot] = Some(Size::from_opt(i.int_val));
                    }
                }
                let [lo, hi] = sizes;
                (IndexResult::Range(lo, hi), var)
            }
        }
    }
}

enum IndexResult {
    /// A single int index: the dimension goes away.
    Drop,
    /// `:` (the dimension's own size) or a gather (the index array's length).
    Keep(Option<Size>),
    Range(Option<Size>, Option<Size>),
    Bad,
}

fn compare(op: BinOp, a: i64, b: i64) -> bool {
    match op {
        BinOp::Eq => a == b,
        BinOp::Ne => a != b,
        BinOp::Lt => a < b,
        BinOp::Le => a <= b,
        BinOp::Gt => a > b,
        _ => a >= b,
    }
}

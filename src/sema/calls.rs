//! Calls: built-in functions, distributions (as values, under `~`, and as `_lpdf`/`_rng`
//! functions), and user `fn`/`layer` calls with shape-variable binding.

use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::ir::prim::Un;
use crate::sema::builtins::{self, ArgShape, DistFn, DistSig, Func, Variate};
use crate::sema::check::{Checker, Ctx, Info};
use crate::sema::ty::{Poly, Size, Ty, Variability};
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::HashMap;

/// A checked argument.
struct ArgInfo {
    info: Info,
    span: Span,
    /// Written `a * b`: a matrix there may have been meant as a product, `a @ b`.
    star: bool,
}

impl ArgInfo {
    fn of(info: Info, e: &Expr) -> ArgInfo {
        let star = matches!(&e.kind, ExprKind::Binary { op: BinOp::Mul, .. });
        ArgInfo { info, span: e.span, star }
    }
}

impl<'a> Checker<'a> {
    pub(super) fn check_call(&mut self, callee: &Ident, args: &[Arg], span: Span) -> Info {
        let name = callee.name.as_str();
        // A function value bound to a name (`act` in a layer): elementwise, so its result has
        // the shape of its argument.
        if let Some(b) = self.lookup(name).cloned() {
            if b.ty.is_error() {
                // Its definition was reported already.
                for a in args {
                    self.check_expr(&a.value);
                }
                return Info::error();
            }
            if let Ty::Func(_) = b.ty {
                let infos = self.check_positional(name, args);
                if infos.len() != 1 {
                    self.arg_count(callee, span, "1", infos.len());
                    return Info::error();
                }
                let i = &infos[0].info;
                return Info::new(i.ty.to_real(), i.var);
            }
            self.error(
                Diagnostic::error(Code::NotAFunction, callee.span, format!("`{name}` is not a function"))
                    .with_label(format!("this is {}", b.ty))
                    .with_secondary(b.span, "declared here")
                    .with_help_opt(if b.ty.dims().is_empty() {
                        None
                    } else {
                        Some(format!("to index it, write `{name}[...]`"))
                    }),
            );
            for a in args {
                self.check_expr(&a.value);
            }
            return Info::error();
        }
        if let Some(f) = self.funcs.get(name) {
            if builtins::distribution(name).is_some() || builtins::is_builtin_function(name) {
                // A user definition of a built-in name, rejected (E0206): which one a call
                // means is unclear, so it is not checked further.
                for a in args {
                    self.check_expr(&a.value);
                }
                return Info::error();
            }
            return self.call_user(f, callee, args, span);
        }
        if let Some(d) = builtins::distribution(name) {
            return self.dist_value(d, callee, args);
        }
        if let Some((d, kind, suffix_fits)) = builtins::dist_function(name) {
            if !suffix_fits && matches!(kind, DistFn::LogCdf(_)) {
                let with: Vec<&str> =
                    builtins::DISTRIBUTIONS.iter().filter(|d| builtins::has_cdf(d)).map(|d| d.name).collect();
                self.error(
                    Diagnostic::error(Code::UnknownFunction, callee.span, format!("`{name}` does not exist"))
                        .with_label(format!("`{}` has no log CDF here", d.name))
                        .with_help(format!("`_lcdf` and `_lccdf` exist for {}", with.join(", "))),
                );
            } else if !suffix_fits {
                let right = d.density_fn();
                self.error(
                    Diagnostic::error(Code::UnknownFunction, callee.span, format!("`{name}` does not exist"))
                        .with_label(if d.is_discrete() {
                            "a discrete distribution has a mass function"
                        } else {
                            "a continuous distribution has a density"
                        })
                        .with_help(format!("did you mean `{right}`?")),
                );
            }
            return self.dist_function(d, kind, callee, args, span);
        }
        if let Some(func) = Func::from_name(name) {
            if let Some(a) = args.iter().find_map(|a| a.name.as_ref()) {
                self.error(
                    Diagnostic::error(Code::UnknownArgument, a.span, format!("`{name}` takes no named arguments"))
                        .with_label("pass it by position"),
                );
            }
            let infos = self.check_positional(name, args);
            // A drop probability written as a number is checked now, not when the data is read.
            if func == Func::Dropout {
                if let Some(p) = infos.get(1).filter(|p| p.info.var >= Variability::Param) {
                    self.error(
                        Diagnostic::error(
                            Code::NotConstant,
                            p.span,
                            "dropout's probability must be known when the data is read, not a parameter",
                        )
                        .with_label("depends on a parameter")
                        .with_help("give it as a number, or as data: MC Dropout treats the rate as fixed, not learned"),
                    );
                } else if let Some(p) = args.get(1).and_then(|a| literal_number(&a.value)) {
                    if !(0.0..1.0).contains(&p) {
                        self.error(
                            Diagnostic::error(
                                Code::NotConstant,
                                args[1].value.span,
                                format!("dropout's probability is {p}; it must be from 0 up to (not including) 1"),
                            )
                            .with_label("not such a number"),
                        );
                    }
                }
            }
            return self.call_builtin(callee, func, &infos, span);
        }
        // Unknown: suggest the closest callable name.
        for a in args {
            self.check_expr(&a.value);
        }
        let mut names = builtins::all_callable_names();
        names.extend(self.funcs.keys().cloned());
        if self.diags.items().iter().any(|d| d.code == Code::ImportFailed) {
            // It may be defined in the import that could not be read; that is reported already.
            return Info::error();
        }
        let looks_like_density = ["_lpdf", "_lpmf", "_rng"].iter().any(|s| name.ends_with(s));
        let code = if looks_like_density { Code::UnknownDistribution } else { Code::UnknownFunction };
        let what = if looks_like_density { "distribution function" } else { "function" };
        let help =
            stan_function(name).map(str::to_string).or_else(|| did_you_mean(name, names.iter().map(String::as_str)));
        self.error(
            Diagnostic::error(code, callee.span, format!("unknown {what} `{name}`"))
                .with_label("not defined")
                .with_help_opt(help),
        );
        Info::error()
    }

    /// A draw (`_rng`) outside `generated` is an error: the log density must be deterministic.
    fn rng_in_generated(&mut self, callee: &Ident, span: Span) {
        if self.ctx != Ctx::Generated {
            self.error(
                Diagnostic::error(
                    Code::MisplacedStmt,
                    span,
                    format!("`{}` draws random numbers, which only `generated` may do", callee.name),
                )
                .with_label("random draw outside `generated`")
                .with_help("the log density must be deterministic: move this to the `generated` block"),
            );
        }
    }

    fn check_positional(&mut self, _name: &str, args: &[Arg]) -> Vec<ArgInfo> {
        args.iter().map(|a| ArgInfo::of(self.check_expr(&a.value), &a.value)).collect()
    }

    fn arg_count(&mut self, callee: &Ident, span: Span, want: &str, got: usize) {
        self.error(
            Diagnostic::error(
                Code::ArgumentCount,
                span,
                format!("`{}` takes {want} argument{}, found {got}", callee.name, if want == "1" { "" } else { "s" }),
            )
            .with_label("wrong number of arguments"),
        );
    }

    /// Require a numeric argument; report a `dist` or `fn` passed where a number is needed.
    fn numeric(&mut self, a: &ArgInfo, fname: &str) -> bool {
        if a.info.ty.is_error() {
            return false;
        }
        if !a.info.ty.is_numeric() {
            let help = match &a.info.ty {
                Ty::Dist(Some(d)) => {
                    Some(format!("`{d}(...)` is a distribution, not a number; for a draw use `{d}_rng(...)`"))
                }
                Ty::Func(Some(f)) => Some(format!("`{f}` is a function: call it, `{f}(x)`")),
                _ => None,
            };
            self.error(
                Diagnostic::error(
                    Code::WrongKind,
                    a.span,
                    format!("`{fname}` needs a number here, found {}", a.info.ty.kind_word()),
                )
                .with_label(format!("this is {}", a.info.ty))
                .with_help_opt(help),
            );
            return false;
        }
        true
    }

    fn expect_int_size(&mut self, a: &ArgInfo, fname: &str) -> Size {
        if a.info.ty.is_error() {
            return Size::Unknown;
        }
        if a.info.ty != Ty::Int {
            self.error(
                Diagnostic::error(
                    Code::IntRequired,
                    a.span,
                    format!("`{fname}` needs an int size here, found {}", a.info.ty),
                )
                .with_label("not an int"),
            );
            return Size::Unknown;
        }
        if a.info.var == Variability::Param {
            self.error(
                Diagnostic::error(Code::SizeNotData, a.span, "a size cannot depend on a parameter")
                    .with_label("depends on a parameter")
                    .with_help("sizes must be known when the data is read"),
            );
            return Size::Unknown;
        }
        Size::from_opt(a.info.int_val.clone())
    }

    fn shape_err(&mut self, a: &ArgInfo, fname: &str, want: &str) -> Info {
        self.error(
            Diagnostic::error(Code::TypeMismatch, a.span, format!("`{fname}` needs {want}, found {}", a.info.ty))
                .with_label(format!("this is {}", a.info.ty)),
        );
        Info::error()
    }

    /// A convolution's output size, (size + 2·padding − k) / stride + 1, when all four are
    /// known numbers (an error where it does not divide); unknown until the data is read
    /// otherwise.
    fn window_size(&mut self, size: &Size, k: &Size, stride: &Size, padding: &Size, span: Span) -> Size {
        let (Some(h), Some(k), Some(s), Some(p)) =
            (size.as_const(), k.as_const(), stride.as_const(), padding.as_const())
        else {
            return Size::Unknown;
        };
        let bad = if s < 1 {
            Some(format!("a stride of {s}; it must be at least 1"))
        } else if p < 0 {
            Some(format!("a padding of {p}; it must be 0 or more"))
        } else if k < 1 {
            Some(format!("a kernel of {k}; it must be at least 1"))
        } else {
            None
        };
        if let Some(why) = bad {
            self.error(
                Diagnostic::error(Code::ShapeMismatch, span, format!("the convolution cannot be made: {why}"))
                    .with_label(format!("{h} positions, kernel {k}, stride {s}, padding {p}")),
            );
            return Size::Unknown;
        }
        if h < 0 {
            return Size::Unknown;
        }
        match crate::math::conv::out_size(h as usize, k as usize, s as usize, p as usize) {
            Ok(o) => Size::constant(o as i64),
            Err(why) => {
                self.error(
                    Diagnostic::error(Code::ShapeMismatch, span, format!("the convolution does not fit: {why}"))
                        .with_label(format!("{h} positions, kernel {k}, stride {s}, padding {p}")),
                );
                Size::Unknown
            }
        }
    }

    fn call_builtin(&mut self, callee: &Ident, func: Func, args: &[ArgInfo], span: Span) -> Info {
        let name = callee.name.as_str();
        let var = args.iter().map(|a| a.info.var).max().unwrap_or(Variability::Const);
        let n = args.len();
        let want = |ck: &mut Self, w: &str| {
            ck.arg_count(callee, span, w, n);
            Info::error()
        };
        if args.iter().any(|a| a.info.ty.is_error()) {
            return Info::new(Ty::Error, var);
        }
        for a in args {
            if !self.numeric(a, name) {
                return Info::new(Ty::Error, var);
            }
        }
        let t = |i: usize| args[i].info.ty.clone();
        match func {
            Func::Elementwise(_) | Func::Identity => {
                if n != 1 {
                    return want(self, "1");
                }
                let keeps_int = matches!(func, Func::Elementwise(Un::Abs) | Func::Identity);
                let ty = if keeps_int && t(0).is_int_valued() { t(0) } else { t(0).to_real() };
                let int_val = args[0].info.int_val.clone().filter(|_| func == Func::Identity);
                Info { ty, var, int_val }
            }
            Func::Pow => {
                if n != 2 {
                    return want(self, "2");
                }
                let dims = self.broadcast_dims(&t(0), &t(1), args[0].span, args[1].span, "pow");
                Info::new(Ty::real_of_dims(dims), var)
            }
            Func::Min | Func::Max | Func::LogSumExp => match n {
                1 => {
                    if t(0).dims().is_empty() {
                        return self.shape_err(&args[0], name, "a vector, matrix or array");
                    }
                    let ty = if t(0).is_int_valued() && func != Func::LogSumExp { Ty::Int } else { Ty::Real };
                    Info::new(ty, var)
                }
                2 => {
                    let dims = self.broadcast_dims(&t(0), &t(1), args[0].span, args[1].span, name);
                    let int = t(0).is_int_valued() && t(1).is_int_valued() && func != Func::LogSumExp;
                    Info::new(if int { Ty::int_of_dims(&dims) } else { Ty::real_of_dims(dims) }, var)
                }
                _ => want(self, "1 or 2"),
            },
            Func::Sum | Func::Mean | Func::Sd | Func::Variance | Func::Prod => {
                if n != 1 {
                    return want(self, "1");
                }
                if t(0).dims().is_empty() {
                    return self.shape_err(&args[0], name, "a vector, matrix or array");
                }
                let ty =
                    if t(0).is_int_valued() && matches!(func, Func::Sum | Func::Prod) { Ty::Int } else { Ty::Real };
                Info::new(ty, var)
            }
            Func::LogMix => {
                if n == 3 {
                    for a in args {
                        if !a.info.ty.is_scalar() {
                            return self.shape_err(
                                a,
                                name,
                                "a real (log_mix(theta, lp1, lp2) mixes two scalar log densities)",
                            );
                        }
                    }
                    Info::new(Ty::Real, var)
                } else if n == 2 {
                    match (t(0), t(1)) {
                        (Ty::Vector(a), Ty::Vector(b)) => {
                            if a.differs(&b) {
                                self.broadcast_dims(&t(0), &t(1), args[0].span, args[1].span, "log_mix");
                            }
                            Info::new(Ty::Real, var)
                        }
                        _ => self.shape_err(&args[0], name, "a vector of weights and a vector of log densities"),
                    }
                } else {
                    want(self, "2 or 3")
                }
            }
            Func::Softmax | Func::LogSoftmax => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Vector(_) | Ty::Matrix(..) => Info::new(t(0), var),
                    _ => self.shape_err(&args[0], name, "a vector (or a matrix, row by row)"),
                }
            }
            Func::LayerNorm => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Matrix(..) | Ty::Tensor(_) => Info::new(t(0), var),
                    _ => self.shape_err(&args[0], name, "a matrix (row by row) or a tensor (image by image)"),
                }
            }
            Func::Dot => {
                if n != 2 {
                    return want(self, "2");
                }
                match (t(0), t(1)) {
                    (Ty::Vector(a), Ty::Vector(b)) => {
                        if a.differs(&b) {
                            self.broadcast_dims(&t(0), &t(1), args[0].span, args[1].span, "dot");
                        }
                        Info::new(Ty::Real, var)
                    }
                    _ => self.shape_err(&args[0], name, "two vectors of the same length"),
                }
            }
            Func::Transpose => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Matrix(r, c) => Info::new(Ty::Matrix(c, r), var),
                    Ty::Vector(k) => Info::new(Ty::Matrix(Size::constant(1), k), var),
                    _ => self.shape_err(&args[0], name, "a matrix"),
                }
            }
            Func::Col | Func::Row => {
                if n != 2 {
                    return want(self, "2");
                }
                let Ty::Matrix(r, c) = t(0) else {
                    return self.shape_err(&args[0], name, "a matrix");
                };
                if t(1) != Ty::Int {
                    return self.shape_err(&args[1], name, "an int index");
                }
                Info::new(Ty::Vector(if func == Func::Col { r } else { c }), var)
            }
            Func::Rows | Func::Cols | Func::Size => {
                if n != 1 {
                    return want(self, "1");
                }
                let dims = t(0).dims();
                let size = match (func, dims.len()) {
                    (_, 0) => return self.shape_err(&args[0], name, "a vector, matrix or array"),
                    (Func::Cols, 1) => return self.shape_err(&args[0], name, "a matrix"),
                    (Func::Cols, _) => dims[1].clone(),
                    (Func::Size, _) if matches!(t(0), Ty::Matrix(..)) => dims[0].mul(&dims[1]),
                    _ => dims[0].clone(),
                };
                let int_val = match &size {
                    Size::Known(p) => Some(p.clone()),
                    Size::Unknown => None,
                };
                // A size is known when the data is read, whatever the argument depends on.
                Info { ty: Ty::Int, var: Variability::Data, int_val }
            }
            Func::RepVector => {
                if n != 2 {
                    return want(self, "2");
                }
                if !t(0).is_scalar() {
                    return self.shape_err(&args[0], name, "a real");
                }
                let k = self.expect_int_size(&args[1], name);
                Info::new(Ty::Vector(k), var)
            }
            Func::RepMatrix => {
                if n != 3 {
                    return want(self, "3");
                }
                if !t(0).is_scalar() {
                    return self.shape_err(&args[0], name, "a real");
                }
                let r = self.expect_int_size(&args[1], name);
                let c = self.expect_int_size(&args[2], name);
                Info::new(Ty::Matrix(r, c), var)
            }
            Func::Zeros | Func::Ones => match n {
                1 => {
                    let k = self.expect_int_size(&args[0], name);
                    Info::new(Ty::Vector(k), Variability::Data)
                }
                2 => {
                    let r = self.expect_int_size(&args[0], name);
                    let c = self.expect_int_size(&args[1], name);
                    Info::new(Ty::Matrix(r, c), Variability::Data)
                }
                _ => want(self, "1 or 2"),
            },
            Func::DiagMatrix => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Vector(k) => Info::new(Ty::Matrix(k.clone(), k), var),
                    _ => self.shape_err(&args[0], name, "a vector"),
                }
            }
            Func::Diagonal | Func::Cholesky => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Matrix(r, c) => {
                        if r.differs(&c) {
                            self.error(
                                Diagnostic::error(
                                    Code::ShapeMismatch,
                                    args[0].span,
                                    format!("`{name}` needs a square matrix, found {}", t(0)),
                                )
                                .with_label(format!("{r} rows but {c} columns")),
                            );
                        }
                        Info::new(if func == Func::Diagonal { Ty::Vector(r) } else { Ty::Matrix(r.clone(), r) }, var)
                    }
                    _ => self.shape_err(&args[0], name, "a square matrix"),
                }
            }
            Func::GpExpQuadCov => {
                if n != 3 {
                    return want(self, "3");
                }
                let k = match t(0) {
                    Ty::Vector(k) => k,
                    Ty::Array(k, e) if e.is_scalar() => k,
                    _ => return self.shape_err(&args[0], name, "a vector of inputs"),
                };
                for a in &args[1..] {
                    if !a.info.ty.is_scalar() {
                        return self.shape_err(a, name, "a real (the marginal sd alpha and length-scale rho)");
                    }
                }
                Info::new(Ty::Matrix(k.clone(), k), var)
            }
            Func::ColMeans | Func::ColSums | Func::RowMeans | Func::RowSums => {
                if n != 1 {
                    return want(self, "1");
                }
                match t(0) {
                    Ty::Matrix(r, c) => {
                        Info::new(Ty::Vector(if matches!(func, Func::ColMeans | Func::ColSums) { c } else { r }), var)
                    }
                    _ => self.shape_err(&args[0], name, "a matrix"),
                }
            }
            Func::Join => {
                // FractalNet's join: the mean of two or more inputs of one shape.
                if n < 2 {
                    return want(self, "2 or more");
                }
                let mut dims = t(0).dims();
                for k in 1..n {
                    if t(k).dims().len() != dims.len() {
                        return self.shape_err(&args[k], name, &format!("the shape of the first input, {}", t(0)));
                    }
                    dims =
                        self.broadcast_dims(&Ty::real_of_dims(dims.clone()), &t(k), args[0].span, args[k].span, "join");
                }
                Info::new(Ty::real_of_dims(dims), var)
            }
            Func::Dropout => {
                // The identity on its first argument; p is a real (checked for range when
                // the model is compiled).
                if n != 2 {
                    return want(self, "2");
                }
                if !t(1).dims().is_empty() {
                    return self.shape_err(&args[1], name, "a real drop probability");
                }
                Info::new(t(0).to_real(), var)
            }
            Func::Convolve2d => {
                if n != 5 {
                    return want(self, "5 (x, W, b, stride, padding)");
                }
                let (xd, wd) = (t(0).dims(), t(1).dims());
                if xd.len() != 4 {
                    return self.shape_err(&args[0], name, "a tensor[n, c, h, w] of images");
                }
                if wd.len() != 4 {
                    return self.shape_err(&args[1], name, "filters tensor[filters, c, k, k]");
                }
                if !matches!(t(2), Ty::Vector(_)) {
                    return self.shape_err(&args[2], name, "a bias vector[filters]");
                }
                if xd[1].differs(&wd[1]) {
                    self.error(
                        Diagnostic::error(
                            Code::ShapeMismatch,
                            args[1].span,
                            format!("the filters take {} channel(s) but the images have {}", wd[1], xd[1]),
                        )
                        .with_label("filters: tensor[filters, channels, k, k]"),
                    );
                    return Info::error();
                }
                let stride = self.expect_int_size(&args[3], name);
                let padding = self.expect_int_size(&args[4], name);
                let oh = self.window_size(&xd[2], &wd[2], &stride, &padding, args[0].span);
                let ow = self.window_size(&xd[3], &wd[3], &stride, &padding, args[0].span);
                Info::new(Ty::Tensor(vec![xd[0].clone(), wd[0].clone(), oh, ow]), var)
            }
            Func::MaxPool2d | Func::AvgPool2d => {
                if n != 2 {
                    return want(self, "2 (x, k)");
                }
                let xd = t(0).dims();
                if xd.len() != 4 {
                    return self.shape_err(&args[0], name, "a tensor[n, c, h, w] of images");
                }
                let k = self.expect_int_size(&args[1], name);
                let sides = (xd[2].as_const(), xd[3].as_const());
                match (k.as_const(), sides) {
                    (Some(k), _) if k < 1 => {
                        self.error(
                            Diagnostic::error(Code::ShapeMismatch, args[1].span, format!("a pooling window of {k}"))
                                .with_label("must be at least 1"),
                        );
                        return Info::error();
                    }
                    (Some(k), (Some(h), Some(w))) if k > h.min(w) => {
                        self.error(
                            Diagnostic::error(
                                Code::ShapeMismatch,
                                args[1].span,
                                format!("a pooling window of {k} does not fit in a {h} × {w} image"),
                            )
                            .with_label("larger than the image"),
                        );
                        return Info::error();
                    }
                    _ => {}
                }
                let pooled = |d: &Size| match (d.as_const(), k.as_const()) {
                    (Some(d), Some(k)) if k > 0 => Size::constant(d / k),
                    _ => Size::Unknown,
                };
                let (oh, ow) = (pooled(&xd[2]), pooled(&xd[3]));
                Info::new(Ty::Tensor(vec![xd[0].clone(), xd[1].clone(), oh, ow]), var)
            }
            Func::Flatten => {
                if n != 1 {
                    return want(self, "1");
                }
                let d = t(0).dims();
                if d.len() < 2 || t(0).is_int_valued() {
                    return self.shape_err(&args[0], name, "a tensor[n, c, h, w] (or a matrix)");
                }
                let rest = d[2..].iter().fold(d[1].clone(), |a, b| a.mul(b));
                Info::new(Ty::Matrix(d[0].clone(), rest), var)
            }
            Func::ToVector => {
                if n != 1 {
                    return want(self, "1");
                }
                let dims = t(0).dims();
                match dims.len() {
                    0 => self.shape_err(&args[0], name, "a vector, matrix or array"),
                    1 => Info::new(Ty::Vector(dims[0].clone()), var),
                    _ => Info::new(Ty::Vector(dims.iter().skip(1).fold(dims[0].clone(), |a, b| a.mul(b))), var),
                }
            }
        }
    }

    // ---- distributions ----

    /// `normal(0, 1)` used as a value (a `prior` passed to a layer).
    fn dist_value(&mut self, d: &'static DistSig, callee: &Ident, args: &[Arg]) -> Info {
        let (infos, bad) = self.dist_args(d, callee, args);
        if infos.len() != d.params.len() {
            if !bad {
                self.dist_arg_count(d, callee, infos.len(), false);
            }
            return Info::new(Ty::Dist(Some(d.name.to_string())), Variability::Const);
        }
        for (a, (pname, shape)) in infos.iter().zip(d.params) {
            self.dist_param_shape(d, pname, *shape, a, None);
        }
        let var = infos.iter().map(|a| a.info.var).max().unwrap_or(Variability::Const);
        Info::new(Ty::Dist(Some(d.name.to_string())), var)
    }

    /// The arguments matched to the distribution's parameters, and whether any was named
    /// wrongly or given twice (reported; the argument count is then not reported too).
    fn dist_args(&mut self, d: &'static DistSig, _callee: &Ident, args: &[Arg]) -> (Vec<ArgInfo>, bool) {
        let mut bad = false;
        // Distribution arguments may be given by their Stan names (`normal(mu = 0, sigma = 1)`).
        let mut slots: Vec<Option<ArgInfo>> = Vec::new();
        let mut seen_named = false;
        for a in args {
            let info = ArgInfo::of(self.check_expr(&a.value), &a.value);
            match &a.name {
                None => {
                    if seen_named {
                        bad = true;
                        self.error(
                            Diagnostic::error(
                                Code::BadArgumentOrder,
                                a.value.span,
                                "a positional argument after a named one",
                            )
                            .with_label("positional arguments come first"),
                        );
                    }
                    slots.push(Some(info));
                }
                Some(n) => {
                    seen_named = true;
                    match d.params.iter().position(|(p, _)| *p == n.name) {
                        Some(pos) => {
                            while slots.len() <= pos {
                                slots.push(None);
                            }
                            if slots[pos].is_some() {
                                bad = true;
                                self.error(
                                    Diagnostic::error(
                                        Code::BadArgumentOrder,
                                        n.span,
                                        format!("argument `{}` given twice", n.name),
                                    )
                                    .with_label("given again"),
                                );
                            }
                            slots[pos] = Some(info);
                        }
                        None => {
                            bad = true;
                            let names: Vec<&str> = d.params.iter().map(|(p, _)| *p).collect();
                            self.error(
                                Diagnostic::error(
                                    Code::UnknownArgument,
                                    n.span,
                                    format!("`{}` has no argument `{}`", d.name, n.name),
                                )
                                .with_label("unknown argument")
                                .with_help(
                                    did_you_mean(&n.name, names.iter().copied())
                                        .unwrap_or_else(|| format!("its arguments are: {}", names.join(", "))),
                                ),
                            );
                        }
                    }
                }
            }
        }
        (slots.into_iter().flatten().collect(), bad)
    }

    /// Wrong argument count; `with_variate` for the function forms (`normal_lpdf(y, mu, sigma)`),
    /// whose first argument is the variate.
    fn dist_arg_count(&mut self, d: &DistSig, callee: &Ident, got: usize, with_variate: bool) {
        let mut names: Vec<&str> = d.params.iter().map(|(p, _)| *p).collect();
        if with_variate {
            names.insert(0, "the variate");
        }
        let got = got + with_variate as usize;
        self.error(
            Diagnostic::error(
                Code::ArgumentCount,
                callee.span,
                format!(
                    "`{}` takes {} argument{}, found {got}",
                    callee.name,
                    names.len(),
                    if names.len() == 1 { "" } else { "s" }
                ),
            )
            .with_label("wrong number of arguments")
            .with_help(if names.is_empty() {
                format!("write `{}()`", d.name)
            } else {
                format!("`{}({})`", d.name, names.join(", "))
            }),
        );
    }

    /// Check one distribution argument against its expected shape; `variate` (when known)
    /// is what elementwise arguments must broadcast against.
    fn dist_param_shape(
        &mut self,
        d: &DistSig,
        pname: &str,
        shape: ArgShape,
        a: &ArgInfo,
        variate: Option<(&Ty, Span)>,
    ) {
        if a.info.ty.is_error() || !self.numeric(a, d.name) {
            return;
        }
        let ty = &a.info.ty;
        let bad = |ck: &mut Self, want: &str| {
            ck.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    a.span,
                    format!("`{}`'s argument `{pname}` must be {want}, found {ty}", d.name),
                )
                .with_label(format!("this is {ty}")),
            );
        };
        match shape {
            ArgShape::Real | ArgShape::Int => {
                if shape == ArgShape::Int && !ty.is_int_valued() {
                    self.error(
                        Diagnostic::error(
                            Code::IntRequired,
                            a.span,
                            format!("`{}`'s argument `{pname}` must be an int, found {ty}", d.name),
                        )
                        .with_label("not an int"),
                    );
                    return;
                }
                if let Some((v, vs)) = variate {
                    if !ty.dims().is_empty() && !v.dims().is_empty() {
                        let dv = v.dims();
                        let da = ty.dims();
                        let differs = dv.len() != da.len() || dv.iter().zip(da.iter()).any(|(x, y)| x.differs(y));
                        // A vector of a matrix variate's column count goes along its rows.
                        let along_rows = dv.len() == 2 && da.len() == 1 && !dv[1].differs(&da[0]);
                        if differs && !along_rows {
                            self.error(
                                Diagnostic::error(
                                    Code::ShapeMismatch,
                                    a.span,
                                    format!("`{}`'s argument `{pname}` is {ty} but the variate is {v}", d.name),
                                )
                                .with_secondary(vs, format!("{v}"))
                                .with_label(format!("{ty}"))
                                .with_help(if a.star && matches!(ty, Ty::Matrix(..)) {
                                    "`*` multiplies element by element (a vector along a matrix's rows); for the matrix product write `@`: `x @ beta`".to_string()
                                } else if matches!((&ty, &v), (Ty::Matrix(_, c), Ty::Vector(_)) if !c.differs(&Size::constant(1))) {
                                    // A layer of one unit: its only column.
                                    "a layer's output is a matrix, here of one column: take that column as a vector with `col(..., 0)`".to_string()
                                } else {
                                    "an argument is a scalar, has the variate's shape, or (for a matrix variate) is a vector of its column count, repeated along its rows".to_string()
                                }),
                            );
                        }
                    }
                }
            }
            ArgShape::Scalar => {
                if !ty.is_scalar() {
                    bad(self, "a real");
                }
            }
            ArgShape::Vector => {
                // With a stack of variates (a matrix, or an array of vectors) the vector
                // parameter may be a stack too: a row per variate.
                let stacked = variate.is_some_and(|(v, _)| stack_of_vectors(v).is_some());
                if !matches!(ty, Ty::Vector(_)) && !(stacked && stack_of_vectors(ty).is_some()) {
                    bad(
                        self,
                        if stacked {
                            "a vector, or a matrix or array of vectors with a row per variate"
                        } else {
                            "a vector"
                        },
                    );
                }
            }
            ArgShape::VectorOrMatrix => {
                if !matches!(ty, Ty::Vector(_) | Ty::Matrix(..)) {
                    bad(self, "a vector (or a matrix with a row per label)");
                }
            }
            ArgShape::Matrix => match ty {
                Ty::Matrix(r, c) if !r.differs(c) => {}
                _ => bad(self, "a square matrix"),
            },
        }
    }

    /// Check a distribution applied to a variate (under `~` or as `_lpdf`).
    fn check_dist_on(
        &mut self,
        d: &'static DistSig,
        callee: &Ident,
        (args, bad): (&[ArgInfo], bool),
        variate: &Info,
        vspan: Span,
    ) {
        if args.len() != d.params.len() {
            if !bad {
                let fn_form = callee.name != d.name;
                self.dist_arg_count(d, callee, args.len(), fn_form);
            }
            return;
        }
        let v = &variate.ty;
        if !v.is_error() {
            if !v.is_numeric() {
                self.error(
                    Diagnostic::error(
                        Code::WrongKind,
                        vspan,
                        format!("the variate of `{}` must be a number, found {}", d.name, v.kind_word()),
                    )
                    .with_label(format!("this is {v}")),
                );
                return;
            }
            if d.is_discrete() && variate.var == Variability::Param {
                self.error(
                    Diagnostic::error(Code::DiscreteParameter, vspan, format!("`{}` is a discrete distribution but this depends on a parameter", d.name))
                        .with_label("continuous unknown")
                        .with_help("parameters are continuous; a discrete unknown must be marginalised out (`log_mix`, `log_sum_exp`)"),
                );
                return;
            }
            if d.is_discrete() && !v.is_int_valued() {
                self.error(
                    Diagnostic::error(
                        Code::VariateMismatch,
                        vspan,
                        format!("`{}` is a distribution over ints, but this is {v}", d.name),
                    )
                    .with_label("not int-valued")
                    .with_help("declare the data as `int` or `array[N] int`"),
                );
                return;
            }
            let fits = match d.variate {
                Variate::Real | Variate::Int => true,
                Variate::Label => matches!(v, Ty::Int) || matches!(v, Ty::Array(_, e) if **e == Ty::Int),
                Variate::Vector => matches!(v, Ty::Vector(_)) || stack_of_vectors(v).is_some(),
                Variate::Matrix => matches!(v, Ty::Matrix(r, c) if !r.differs(c)),
            };
            if !fits {
                let want = match d.variate {
                    Variate::Label => "an int label or an array of labels",
                    Variate::Vector => "a vector (or a matrix or array of vectors, one variate per row)",
                    _ => "a square matrix",
                };
                self.error(
                    Diagnostic::error(
                        Code::VariateMismatch,
                        vspan,
                        format!("`{}` is a distribution over {want}, but this is {v}", d.name),
                    )
                    .with_label(format!("this is {v}")),
                );
                return;
            }
        }
        for (a, (pname, shape)) in args.iter().zip(d.params) {
            self.dist_param_shape(d, pname, *shape, a, if v.is_error() { None } else { Some((v, vspan)) });
        }
        // Sizes that tie multivariate arguments to the variate.
        let vd = v.dims();
        match d.variate {
            Variate::Vector if !vd.is_empty() => {
                // The variates' length against each vector argument's length and a square
                // matrix's size; a stacked argument's rows against a stacked variate's.
                let (v_rows, v_len) = match stack_of_vectors(v) {
                    Some((m, k)) => (Some(m), k),
                    None => (None, vd[0].clone()),
                };
                for (a, (_, shape)) in args.iter().zip(d.params) {
                    let (a_rows, a_len) = match stack_of_vectors(&a.info.ty) {
                        Some((m, k)) if *shape == ArgShape::Vector => (Some(m), Some(k)),
                        _ => (None, a.info.ty.dims().first().cloned()),
                    };
                    let rows_differ = matches!((&v_rows, &a_rows), (Some(x), Some(y)) if x.differs(y));
                    if let Some(len) = a_len {
                        if len.differs(&v_len) || rows_differ {
                            self.error(
                                Diagnostic::error(
                                    Code::ShapeMismatch,
                                    a.span,
                                    format!("`{}`: argument is {} but the variate is {v}", d.name, a.info.ty),
                                )
                                .with_secondary(vspan, format!("{v}"))
                                .with_label(format!("{}", a.info.ty)),
                            );
                        }
                    }
                }
            }
            Variate::Label => {
                if let (Ty::Matrix(r, _), Ty::Array(n, _)) = (&args[0].info.ty, v) {
                    if r.differs(n) {
                        self.error(
                            Diagnostic::error(
                                Code::ShapeMismatch,
                                args[0].span,
                                format!("{} rows of logits for {} labels", r, n),
                            )
                            .with_secondary(vspan, format!("{v}"))
                            .with_label(format!("{}", args[0].info.ty)),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn dist_function(&mut self, d: &'static DistSig, kind: DistFn, callee: &Ident, args: &[Arg], span: Span) -> Info {
        match kind {
            DistFn::LogDensity | DistFn::LogCdf(_) => {
                if args.is_empty() {
                    self.arg_count(callee, span, &format!("{}", d.params.len() + 1), 0);
                    return Info::error();
                }
                let variate = self.check_expr(&args[0].value);
                let (rest, bad) = self.dist_args(d, callee, &args[1..]);
                self.check_dist_on(d, callee, (&rest, bad), &variate, args[0].value.span);
                let var = rest.iter().map(|a| a.info.var).fold(variate.var, Variability::max);
                Info::new(Ty::Real, var)
            }
            DistFn::Rng if d.variate == Variate::Matrix => {
                // A K × K correlation factor, as Stan's `lkj_corr_cholesky_rng(K, eta)`: the size
                // first, since the distribution's own arguments do not give it.
                if args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
                    self.arg_count(callee, span, "2 (the size K, then eta)", args.len());
                    for a in args {
                        self.check_expr(&a.value);
                    }
                    return Info::error();
                }
                let k = ArgInfo::of(self.check_expr(&args[0].value), &args[0].value);
                let eta = ArgInfo::of(self.check_expr(&args[1].value), &args[1].value);
                self.rng_in_generated(callee, span);
                let size = match (&k.info.ty, &k.info.int_val) {
                    (Ty::Int, Some(p)) if k.info.var == Variability::Data || k.info.var == Variability::Const => {
                        Size::Known(p.clone())
                    }
                    (Ty::Error, _) => return Info::error(),
                    _ => {
                        self.error(
                            Diagnostic::error(
                                Code::SizeNotData,
                                k.span,
                                format!("`{}`'s first argument is the size K, an int known from the data", callee.name),
                            )
                            .with_label(format!("this is {}", k.info.ty)),
                        );
                        return Info::error();
                    }
                };
                self.dist_param_shape(d, "eta", ArgShape::Scalar, &eta, None);
                let var = eta.info.var.max(Variability::Param);
                Info::new(Ty::Matrix(size.clone(), size), var)
            }
            DistFn::Rng => {
                let (infos, bad) = self.dist_args(d, callee, args);
                if infos.len() != d.params.len() {
                    if !bad {
                        self.dist_arg_count(d, callee, infos.len(), false);
                    }
                    return Info::error();
                }
                self.rng_in_generated(callee, span);
                for (a, (pname, shape)) in infos.iter().zip(d.params) {
                    self.dist_param_shape(d, pname, *shape, a, None);
                }
                let var = infos.iter().map(|a| a.info.var).max().unwrap_or(Variability::Const).max(Variability::Param);
                let ty = match d.variate {
                    Variate::Real | Variate::Int => {
                        let mut dims: Vec<Size> = Vec::new();
                        for a in &infos {
                            let ad = a.info.ty.dims();
                            if !ad.is_empty() {
                                if dims.is_empty() {
                                    dims = ad;
                                } else if dims.len() != ad.len()
                                    || dims.iter().zip(ad.iter()).any(|(x, y)| x.differs(y))
                                {
                                    self.error(
                                        Diagnostic::error(
                                            Code::ShapeMismatch,
                                            a.span,
                                            format!("`{}`: arguments of different shapes", callee.name),
                                        )
                                        .with_label(format!("{}", a.info.ty)),
                                    );
                                }
                            }
                        }
                        if d.variate == Variate::Int {
                            Ty::int_of_dims(&dims)
                        } else {
                            Ty::real_of_dims(dims)
                        }
                    }
                    Variate::Label => match (d.params.first().map(|p| p.1), infos.first().map(|a| &a.info.ty)) {
                        // A location per label (ordered_logistic): a label per location.
                        (Some(ArgShape::Real), Some(t)) => Ty::int_of_dims(&t.dims()),
                        (_, Some(Ty::Matrix(r, _))) => Ty::Array(r.clone(), Box::new(Ty::Int)),
                        _ => Ty::Int,
                    },
                    Variate::Vector => match infos.first().map(|a| &a.info.ty) {
                        Some(Ty::Vector(k)) => Ty::Vector(k.clone()),
                        _ => Ty::Vector(Size::Unknown),
                    },
                    Variate::Matrix => Ty::Matrix(Size::Unknown, Size::Unknown),
                };
                Info::new(ty, var)
            }
        }
    }

    /// `lhs ~ dist`.
    pub(super) fn check_tilde(&mut self, lhs: &Expr, dist: &Expr, _span: Span) {
        let variate = self.check_expr(lhs);
        match &dist.kind {
            ExprKind::Call { callee, args }
                // A variable named as a distribution (Stan's `beta` coefficients) does not hide
                // it: only a `dist` argument could be meant, and that is never called.
                if builtins::distribution(&callee.name).is_some()
                    && self.lookup(&callee.name).is_none_or(|b| !matches!(b.ty, Ty::Dist(_))) =>
            {
                let d = builtins::distribution(&callee.name).expect("checked above");
                let (infos, bad) = self.dist_args(d, callee, args);
                self.check_dist_on(d, callee, (&infos, bad), &variate, lhs.span);
            }
            ExprKind::Name(n) if self.lookup(n).is_some_and(|b| matches!(b.ty, Ty::Dist(_))) => {
                // A `dist` argument of a layer; checked when the layer is elaborated.
            }
            ExprKind::Call { callee, .. } => {
                let name = callee.name.as_str();
                let mut d =
                    Diagnostic::error(Code::NotADistribution, dist.span, format!("`{name}` is not a distribution"))
                        .with_label("expected a distribution such as `normal(mu, sigma)`");
                let dist_names: Vec<&str> = builtins::DISTRIBUTIONS.iter().map(|d| d.name).collect();
                if let Some((dd, _, _)) = builtins::dist_function(name) {
                    d = d.with_help(format!(
                        "`~` takes the distribution itself: `{} ~ {}(...)`",
                        crate::syntax::print::expr(lhs),
                        dd.name
                    ));
                } else if builtins::is_builtin_function(name) || self.funcs.contains_key(name) {
                    d = d.with_help(format!(
                        "`{name}` is a function; `~` needs a distribution such as `normal(mu, sigma)`"
                    ));
                } else {
                    // Names used by other tools, then close spellings.
                    let alias = match name {
                        "gaussian" | "Normal" | "norm" => Some("normal"),
                        "double_exponential" => Some("laplace"),
                        "halfnormal" | "HalfNormal" => Some("half_normal"),
                        "halfcauchy" | "HalfCauchy" => Some("half_cauchy"),
                        "lognorm" | "LogNormal" => Some("lognormal"),
                        "expon" => Some("exponential"),
                        "studentt" | "StudentT" | "t" => Some("student_t"),
                        "negative_binomial" => Some("neg_binomial_2"),
                        _ => None,
                    };
                    let help = match alias {
                        Some(a) => Some(format!("bnnc calls it `{a}`")),
                        None => did_you_mean(name, dist_names.iter().copied()),
                    };
                    d = Diagnostic::error(
                        Code::UnknownDistribution,
                        callee.span,
                        format!("unknown distribution `{name}`"),
                    )
                    .with_label("not a distribution")
                    .with_help(
                        help.unwrap_or_else(|| "the distributions are listed in the language reference".to_string()),
                    );
                }
                self.error(d);
                if let ExprKind::Call { args, .. } = &dist.kind {
                    for a in args {
                        self.check_expr(&a.value);
                    }
                }
            }
            _ => {
                let info = self.check_expr(dist);
                if !info.ty.is_error() {
                    self.error(
                        Diagnostic::error(
                            Code::NotADistribution,
                            dist.span,
                            format!("the right of `~` must be a distribution, found {}", info.ty),
                        )
                        .with_label("not a distribution")
                        .with_help("write a distribution with its arguments, as in `y ~ normal(mu, sigma)`"),
                    );
                }
            }
        }
    }

    // ---- user functions and layers ----

    fn call_user(&mut self, f: &FuncDef, callee: &Ident, args: &[Arg], span: Span) -> Info {
        let is_layer = f.kind == FuncKind::Layer;
        if is_layer {
            let why = match self.ctx {
                Ctx::Fn => Some("a `fn` is pure and cannot make parameters"),
                Ctx::Generated => Some("`generated` runs after sampling and cannot make parameters"),
                Ctx::Data | Ctx::Params => Some("parameters of layers are made in `model`"),
                _ if self.loop_depth > 0 => Some("inside a loop the number of parameters would depend on data"),
                _ if self.runtime_if_depth > 0 => {
                    Some("inside a runtime `if` the parameters would exist only sometimes")
                }
                _ => None,
            };
            if let Some(why) = why {
                self.error(
                    Diagnostic::error(Code::LayerInFn, callee.span, format!("layer `{}` called where parameters cannot be made", callee.name))
                        .with_label(why)
                        .with_help("call layers at the top level of `model` or of another layer; repeat with recursion on an int argument"),
                );
            }
        }
        // Match arguments to declarations.
        let mut slots: Vec<Option<(ArgInfo, &Expr)>> = (0..f.args.len()).map(|_| None).collect();
        let mut seen_named = false;
        let mut positional = 0usize;
        let errors_before = self.diags.error_count();
        for a in args {
            let info = ArgInfo::of(self.check_expr(&a.value), &a.value);
            let pos = match &a.name {
                None => {
                    if seen_named {
                        self.error(
                            Diagnostic::error(
                                Code::BadArgumentOrder,
                                a.value.span,
                                "a positional argument after a named one",
                            )
                            .with_label("positional arguments come first"),
                        );
                        continue;
                    }
                    positional += 1;
                    if positional > f.args.len() {
                        self.error(
                            Diagnostic::error(
                                Code::ArgumentCount,
                                a.value.span,
                                format!("`{}` takes at most {} arguments", f.name.name, f.args.len()),
                            )
                            .with_label("extra argument")
                            .with_secondary(f.name.span, "defined here"),
                        );
                        continue;
                    }
                    positional - 1
                }
                Some(n) => {
                    seen_named = true;
                    match f.args.iter().position(|d| d.name.name == n.name) {
                        Some(p) => p,
                        None => {
                            let names: Vec<&str> = f.args.iter().map(|d| d.name.name.as_str()).collect();
                            self.error(
                                Diagnostic::error(
                                    Code::UnknownArgument,
                                    n.span,
                                    format!("`{}` has no argument `{}`", f.name.name, n.name),
                                )
                                .with_label("unknown argument")
                                .with_help(
                                    did_you_mean(&n.name, names.iter().copied())
                                        .unwrap_or_else(|| format!("its arguments are: {}", names.join(", "))),
                                ),
                            );
                            continue;
                        }
                    }
                }
            };
            if slots[pos].is_some() {
                self.error(
                    Diagnostic::error(
                        Code::BadArgumentOrder,
                        a.value.span,
                        format!("argument `{}` given twice", f.args[pos].name.name),
                    )
                    .with_label("given again"),
                );
                continue;
            }
            slots[pos] = Some((info, &a.value));
        }
        // Bind shape variables and int arguments, then check each argument's type.
        let mut subst: HashMap<String, Poly> = HashMap::new();
        let mut bound_by: HashMap<String, Span> = HashMap::new();
        let mut var = Variability::Const;
        let mut ok = true;
        for (i, decl) in f.args.iter().enumerate() {
            let Some((a, _)) = &slots[i] else {
                // An int argument left at a default that is a number sizes the result too.
                if let Some(c) = decl.default.as_ref().and_then(|d| pattern_size(d).as_const()) {
                    subst.insert(decl.name.name.clone(), Poly::constant(c));
                }
                // A missing argument is only news if the arguments were otherwise well formed.
                if decl.default.is_none() && self.diags.error_count() == errors_before {
                    self.error(
                        Diagnostic::error(
                            Code::ArgumentCount,
                            span,
                            format!("`{}` is missing argument `{}`", f.name.name, decl.name.name),
                        )
                        .with_label(format!("`{}` not given", decl.name.name))
                        .with_secondary(decl.span, "declared here"),
                    );
                    ok = false;
                }
                continue;
            };
            var = var.max(a.info.var);
            if a.info.ty.is_error() {
                ok = false;
                continue;
            }
            let want = self.pattern_type(&decl.ty);
            if !self.unify_arg(f, decl, &want, a, &mut subst, &mut bound_by) {
                ok = false;
            } else if want == Ty::Int {
                if is_layer && a.info.var == Variability::Param {
                    self.error(
                        Diagnostic::error(
                            Code::NotConstant,
                            a.span,
                            format!("layer argument `{}` must be known at compile time", decl.name.name),
                        )
                        .with_label("depends on a parameter")
                        .with_help(
                            "int arguments of layers set sizes and recursion depth: pass a literal or an int from data",
                        ),
                    );
                    ok = false;
                }
                if let Some(v) = &a.info.int_val {
                    subst.insert(decl.name.name.clone(), v.clone());
                }
            }
        }
        if !ok {
            return Info::new(Ty::Error, var);
        }
        let inexact = std::cell::RefCell::new(None);
        let ty = type_with(&f.ret, &|e| size_at_call(e, &subst, &inexact));
        if let Some((num, den)) = inexact.into_inner() {
            self.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    span,
                    format!(
                        "the size of what `{}` returns is {num} / {den} here, not a whole number of at least 0",
                        f.name.name
                    ),
                )
                .with_label("with these arguments")
                .with_secondary(f.ret.span, "its result's size is a quotient")
                .with_help(if f.name.name == "conv2d" {
                    "a convolution's output side is (side + 2·padding − kernel) / stride + 1: the kernel must fit in the padded image and the stride must tile it"
                } else {
                    "choose arguments for which the division is exact"
                }),
            );
            return Info::new(Ty::Error, var);
        }
        let var = if is_layer { Variability::Param } else { var.max(Variability::Const) };
        Info::new(ty, var)
    }

    /// An argument or return type of a function as a pattern: sizes are polynomials over
    /// shape variables and int arguments, which are substituted per call.
    fn pattern_type(&mut self, t: &TypeExpr) -> Ty {
        type_with(t, &pattern_size)
    }

    fn unify_arg(
        &mut self,
        f: &FuncDef,
        decl: &ArgDecl,
        want: &Ty,
        a: &ArgInfo,
        subst: &mut HashMap<String, Poly>,
        bound_by: &mut HashMap<String, Span>,
    ) -> bool {
        let have = &a.info.ty;
        let kind_ok = match (want, have) {
            (Ty::Error, _) => return true,
            (Ty::Dist(_), Ty::Dist(_)) | (Ty::Func(_), Ty::Func(_)) => return true,
            (Ty::Int, Ty::Int) => true,
            (Ty::Real, t) => t.is_scalar(),
            (Ty::Vector(_), t) => t.dims().len() == 1 && t.is_numeric() && !matches!(t, Ty::Dist(_) | Ty::Func(_)),
            (Ty::Matrix(..), Ty::Matrix(..)) => true,
            (Ty::Tensor(d), Ty::Tensor(e)) => d.len() == e.len(),
            (Ty::Array(..), t) => t.dims().len() == want.dims().len() && (!want.is_int_valued() || t.is_int_valued()),
            _ => false,
        };
        if !kind_ok {
            let code = match (want, have) {
                (Ty::Int, t) if t.is_numeric() => Code::IntRequired,
                (Ty::Dist(_) | Ty::Func(_), _) | (_, Ty::Dist(_) | Ty::Func(_)) => Code::WrongKind,
                _ => Code::TypeMismatch,
            };
            let help = match (want, have) {
                (Ty::Dist(_), _) => {
                    Some("pass a distribution with its arguments, as in `prior = normal(0, 1)`".to_string())
                }
                (Ty::Func(_), _) => Some("pass a function by name, as in `act = tanh`".to_string()),
                // A single input column (`x: vector[N]`) where a layer takes rows of features.
                (Ty::Matrix(..), Ty::Vector(n)) => Some(format!(
                    "`{}` takes a matrix, a row per observation and a column per input: declare one input as `matrix[{n}, 1]` in `data` (in JSON, [[x0], [x1], ...])",
                    f.name.name
                )),
                (_, Ty::Dist(Some(d))) => Some(format!(
                    "`{d}(...)` is a distribution; a `{}` argument needs a number",
                    crate::syntax::print::ty(&decl.ty)
                )),
                _ => None,
            };
            self.error(
                Diagnostic::error(
                    code,
                    a.span,
                    format!(
                        "argument `{}` of `{}` must be {}, found {}",
                        decl.name.name,
                        f.name.name,
                        crate::syntax::print::ty(&decl.ty),
                        have
                    ),
                )
                .with_label(format!("this is {have}"))
                .with_secondary(decl.ty.span, "declared here")
                .with_help_opt(help),
            );
            return false;
        }
        for (w, h) in want.dims().iter().zip(have.dims().iter()) {
            let Size::Known(wp) = w else { continue };
            // A lone shape variable not yet bound takes the argument's size.
            let syms = wp.symbols();
            if syms.len() == 1 && *wp == Poly::symbol(&syms[0]) && !subst.contains_key(&syms[0]) {
                if let Size::Known(hp) = h {
                    subst.insert(syms[0].clone(), hp.clone());
                    bound_by.insert(syms[0].clone(), a.span);
                }
                continue;
            }
            let expected = Size::from_opt(wp.subst(subst));
            if expected.differs(h) && syms.iter().all(|s| subst.contains_key(s)) {
                let mut d = Diagnostic::error(
                    if syms.len() == 1 && bound_by.contains_key(&syms[0]) {
                        Code::ShapeVarConflict
                    } else {
                        Code::ShapeMismatch
                    },
                    a.span,
                    format!(
                        "argument `{}` of `{}` has size {h} where {expected} is expected",
                        decl.name.name, f.name.name
                    ),
                )
                .with_label(format!("this is {have}"))
                .with_secondary(decl.ty.span, format!("declared as {}", crate::syntax::print::ty(&decl.ty)));
                if let Some(first) = syms.first().and_then(|s| bound_by.get(s).map(|sp| (s.clone(), *sp))) {
                    d = d.with_secondary(first.1, format!("`{}` was bound to {} here", first.0, subst[&first.0]));
                }
                self.error(d);
                return false;
            }
        }
        true
    }
}

/// A type written in a signature, its sizes given by `size`.
fn type_with(t: &TypeExpr, size: &dyn Fn(&Expr) -> Size) -> Ty {
    match &t.kind {
        TypeKind::Fn => Ty::Func(None),
        TypeKind::Infer => Ty::Error,
        TypeKind::Array { dims, elem } => {
            let inner = type_with(elem, size);
            dims.iter().rev().fold(inner, |acc, d| Ty::Array(size(d), Box::new(acc)))
        }
        TypeKind::Named { name, dims, .. } => {
            let s = |i: usize| dims.get(i).map(size).unwrap_or(Size::Unknown);
            match name.name.as_str() {
                "int" => Ty::Int,
                "real" => Ty::Real,
                "dist" => Ty::Dist(None),
                "vector" | "simplex" | "ordered" | "positive_ordered" => Ty::Vector(s(0)),
                "cholesky_corr" => Ty::Matrix(s(0), s(0)),
                "matrix" => Ty::Matrix(s(0), s(1)),
                "tensor" => Ty::Tensor(dims.iter().map(size).collect()),
                _ => Ty::Error,
            }
        }
    }
}

/// A size of a return type at a call: the pattern with the call's sizes put in; a quotient
/// (a convolution's output size) is known when both sides are numbers, and must be exact
/// (else `inexact` records the first one that is not).
fn size_at_call(e: &Expr, subst: &HashMap<String, Poly>, inexact: &std::cell::RefCell<Option<(i64, i64)>>) -> Size {
    match &e.kind {
        ExprKind::Paren(inner) => size_at_call(inner, subst, inexact),
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (size_at_call(lhs, subst, inexact), size_at_call(rhs, subst, inexact));
            match op {
                BinOp::Add => a.add(&b),
                BinOp::Sub => a.sub(&b),
                BinOp::Mul => a.mul(&b),
                BinOp::Div => match (a.as_const(), b.as_const()) {
                    (Some(x), Some(y)) if y > 0 => {
                        if x < 0 || x % y != 0 {
                            inexact.borrow_mut().get_or_insert((x, y));
                        }
                        Size::constant(x.max(0) / y)
                    }
                    _ => Size::Unknown,
                },
                _ => Size::Unknown,
            }
        }
        _ => subst_size(&pattern_size(e), subst),
    }
}

/// Substitute; a size still mentioning unbound names becomes unknown (checked at bind time).
fn subst_size(sz: &Size, subst: &HashMap<String, Poly>) -> Size {
    match sz {
        Size::Known(p) if p.symbols().iter().all(|x| subst.contains_key(x)) => Size::from_opt(p.subst(subst)),
        Size::Known(p) if p.as_const().is_some() => sz.clone(),
        _ => Size::Unknown,
    }
}

/// A size written in a signature, as a polynomial over its names (not yet substituted).
fn pattern_size(e: &Expr) -> Size {
    match &e.kind {
        ExprKind::Int(v) => Size::constant(*v),
        ExprKind::Name(n) => Size::Known(Poly::symbol(n)),
        ExprKind::Paren(inner) => pattern_size(inner),
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (pattern_size(lhs), pattern_size(rhs));
            match op {
                BinOp::Add => a.add(&b),
                BinOp::Sub => a.sub(&b),
                BinOp::Mul => a.mul(&b),
                _ => Size::Unknown,
            }
        }
        _ => Size::Unknown,
    }
}

/// The value of a number written in the source (`0.5`, `-1`, `(2)`), if the expression is one.
fn literal_number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Int(v) => Some(*v as f64),
        ExprKind::Real(v) => Some(*v),
        ExprKind::Paren(x) => literal_number(x),
        ExprKind::Unary { op: crate::syntax::ast::UnOp::Neg, operand } => literal_number(operand).map(|v| -v),
        _ => None,
    }
}

/// A stack of vectors, `matrix[m, k]` or `array[m] vector[k]`: its rows m and length k. The
/// multivariate families take one as m independent variates.
fn stack_of_vectors(ty: &Ty) -> Option<(Size, Size)> {
    match ty {
        Ty::Matrix(m, k) => Some((m.clone(), k.clone())),
        Ty::Array(m, e) => match &**e {
            Ty::Vector(k) => Some((m.clone(), k.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// How to write a Stan function bnnc does not have (where a near spelling would mislead:
/// `lbeta` is not the distribution `beta`).
fn stan_function(name: &str) -> Option<&'static str> {
    Some(match name {
        "lbeta" => "the log of the beta function is `lgamma(a) + lgamma(b) - lgamma(a + b)`",
        "log2" => "write `log(x) / log(2)`",
        "log10" => "write `log(x) / log(10)`",
        "exp2" => "write `pow(2, x)`",
        "trigamma" | "lmgamma" | "lchoose" | "binomial_coefficient_log" => {
            "bnnc has `lgamma` and `digamma` only; a log binomial coefficient is `lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)`"
        }
        "num_elements" => "the number of elements is `size(x)`",
        "cumulative_sum" => "bnnc has no `cumulative_sum`: accumulate in a loop with a `var` (`var c: vector[N]`, then `c[i] = c[i - 1] + x[i]`)",
        "log1m_exp" | "log_diff_exp" => "write `a + log1m(exp(b - a))` for log(exp(a) − exp(b))",
        "negative_infinity" | "positive_infinity" | "not_a_number" => {
            "bnnc has no infinite constants; a region with no density is given by the parameter's bounds"
        }
        _ => return None,
    })
}

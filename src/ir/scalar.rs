//! The elementwise functions: [`Un`] of one argument and [`Bin`] of two. Each function's
//! value and partial derivatives are written once, as rules over an [`Arith`] backend: plain
//! `f64` arithmetic ([`F64`]) for the interpreter and the kernels, Cranelift instructions for
//! compiled code (`jit::emit`), and [`Reads`], which finds what a derivative reads. A rule is
//! arithmetic, comparisons and calls of [`Scalar`] functions (special functions written in
//! Rust, which compiled code calls through a registered symbol), so the interpreter and
//! compiled code evaluate the same operations in the same order. Every `match` here lists
//! every function: a new one does not compile until it has its value and its derivatives.

use crate::math::vmath;
use std::convert::Infallible;

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Un {
    Neg,
    Not,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sqrt,
    Square,
    Abs,
    Tanh,
    Sigmoid,
    Logit,
    Softplus,
    Relu,
    Lgamma,
    Digamma,
    Sin,
    Cos,
    Erf,
    Phi,
    Log1m,
    LogInvLogit,
    Inv,
    Floor,
    Ceil,
    Round,
}

/// Elementwise functions of two arguments, broadcasting (scalars with anything; a vector
/// of length c along the rows of an r × c matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    /// Integer division truncating toward zero (Stan's int `/`).
    IntDiv,
    Mod,
    Pow,
    Min,
    Max,
    LogSumExp,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// A comparison (false when either side is NaN, except `Ne`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// The operations a rule is built from. `call` may fail (compiled code declaring a symbol);
/// the other operations cannot.
pub trait Arith {
    type V: Copy;
    type E;
    fn c(&mut self, x: f64) -> Self::V;
    fn neg(&mut self, x: Self::V) -> Self::V;
    fn add(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn div(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn sqrt(&mut self, x: Self::V) -> Self::V;
    fn abs(&mut self, x: Self::V) -> Self::V;
    fn floor(&mut self, x: Self::V) -> Self::V;
    fn ceil(&mut self, x: Self::V) -> Self::V;
    /// Rust's `f64::max`: the larger; when one is NaN, the other.
    fn max(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Rust's `f64::min`.
    fn min(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a cc b ? x : y`.
    fn pick(&mut self, cc: Cmp, a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    fn call(&mut self, f: Scalar, args: &[Self::V]) -> Result<Self::V, Self::E>;

    /// 1 where `a cc b`, else 0.
    fn flag(&mut self, cc: Cmp, a: Self::V, b: Self::V) -> Self::V {
        let (one, zero) = (self.c(1.0), self.c(0.0));
        self.pick(cc, a, b, one, zero)
    }
}

/// The special functions rules call (each a Rust function of one, two or three reals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    Exp,
    Ln,
    Ln1p,
    Expm1,
    Tanh,
    Sigmoid,
    Logit,
    Softplus,
    Lgamma,
    Digamma,
    Trigamma,
    Sin,
    Cos,
    Erf,
    /// d erf(x) / dx = 2 e^(−x²) / √π.
    ErfDeriv,
    Phi,
    /// The standard normal density, dΦ(x) / dx.
    PhiDeriv,
    Log1m,
    LogInvLogit,
    Round,
    IntDiv,
    Mod,
    Pow,
    /// ∂(a^b)/∂a given (a, b, y = a^b).
    PowDa,
    /// ∂(a^b)/∂b given (a, b, y).
    PowDb,
    LogAddExp,
    /// ∂ log(e^a + e^b) / ∂a given (a, b).
    LogAddExpDa,
    /// ∂ log(e^a + e^b) / ∂b given (a, b).
    LogAddExpDb,
}

impl Scalar {
    pub const ALL: [Scalar; 28] = [
        Scalar::Exp,
        Scalar::Ln,
        Scalar::Ln1p,
        Scalar::Expm1,
        Scalar::Tanh,
        Scalar::Sigmoid,
        Scalar::Logit,
        Scalar::Softplus,
        Scalar::Lgamma,
        Scalar::Digamma,
        Scalar::Trigamma,
        Scalar::Sin,
        Scalar::Cos,
        Scalar::Erf,
        Scalar::ErfDeriv,
        Scalar::Phi,
        Scalar::PhiDeriv,
        Scalar::Log1m,
        Scalar::LogInvLogit,
        Scalar::Round,
        Scalar::IntDiv,
        Scalar::Mod,
        Scalar::Pow,
        Scalar::PowDa,
        Scalar::PowDb,
        Scalar::LogAddExp,
        Scalar::LogAddExpDa,
        Scalar::LogAddExpDb,
    ];

    /// The function on its arguments (as many as [`Self::symbol`]'s arity).
    pub fn eval(self, v: &[f64]) -> f64 {
        match self {
            Scalar::Exp => vmath::exp(v[0]),
            Scalar::Ln => vmath::ln(v[0]),
            Scalar::Ln1p => vmath::ln_1p(v[0]),
            Scalar::Expm1 => vmath::expm1(v[0]),
            Scalar::Tanh => vmath::tanh(v[0]),
            Scalar::Sigmoid => sigmoid(v[0]),
            Scalar::Logit => (v[0] / (1.0 - v[0])).ln(),
            Scalar::Softplus => softplus(v[0]),
            Scalar::Lgamma => statrs::function::gamma::ln_gamma(v[0]),
            Scalar::Digamma => statrs::function::gamma::digamma(v[0]),
            Scalar::Trigamma => trigamma(v[0]),
            Scalar::Sin => v[0].sin(),
            Scalar::Cos => v[0].cos(),
            Scalar::Erf => libm::erf(v[0]),
            Scalar::ErfDeriv => std::f64::consts::FRAC_2_SQRT_PI * (-v[0] * v[0]).exp(),
            Scalar::Phi => 0.5 * libm::erfc(-v[0] / std::f64::consts::SQRT_2),
            Scalar::PhiDeriv => (-0.5 * v[0] * v[0]).exp() / (2.0 * std::f64::consts::PI).sqrt(),
            Scalar::Log1m => (-v[0]).ln_1p(),
            Scalar::LogInvLogit => -softplus(-v[0]),
            Scalar::Round => v[0].round(),
            Scalar::IntDiv => {
                if v[1] == 0.0 {
                    f64::NAN
                } else {
                    (v[0] / v[1]).trunc()
                }
            }
            Scalar::Mod => {
                if v[1] == 0.0 {
                    f64::NAN
                } else {
                    v[0] % v[1]
                }
            }
            Scalar::Pow => v[0].powf(v[1]),
            Scalar::PowDa => {
                let (a, b) = (v[0], v[1]);
                if b == 0.0 {
                    0.0
                } else {
                    b * a.powf(b - 1.0)
                }
            }
            Scalar::PowDb => {
                let (a, y) = (v[0], v[2]);
                if a > 0.0 {
                    y * a.ln()
                } else {
                    0.0
                }
            }
            Scalar::LogAddExp => vmath::log_add_exp(v[0], v[1]).0,
            Scalar::LogAddExpDa => vmath::log_add_exp(v[0], v[1]).1,
            Scalar::LogAddExpDb => vmath::log_add_exp(v[0], v[1]).2,
        }
    }

    /// The symbol compiled code calls, its arity and its address.
    pub fn symbol(self) -> (&'static str, usize, *const u8) {
        macro_rules! sym {
            ($f:ident, 1) => {{
                extern "C" fn f(x: f64) -> f64 {
                    Scalar::$f.eval(&[x])
                }
                (concat!("bnnc_s_", stringify!($f)), 1, f as *const u8)
            }};
            ($f:ident, 2) => {{
                extern "C" fn f(a: f64, b: f64) -> f64 {
                    Scalar::$f.eval(&[a, b])
                }
                (concat!("bnnc_s_", stringify!($f)), 2, f as *const u8)
            }};
            ($f:ident, 3) => {{
                extern "C" fn f(a: f64, b: f64, y: f64) -> f64 {
                    Scalar::$f.eval(&[a, b, y])
                }
                (concat!("bnnc_s_", stringify!($f)), 3, f as *const u8)
            }};
        }
        match self {
            Scalar::Exp => sym!(Exp, 1),
            Scalar::Ln => sym!(Ln, 1),
            Scalar::Ln1p => sym!(Ln1p, 1),
            Scalar::Expm1 => sym!(Expm1, 1),
            Scalar::Tanh => sym!(Tanh, 1),
            Scalar::Sigmoid => sym!(Sigmoid, 1),
            Scalar::Logit => sym!(Logit, 1),
            Scalar::Softplus => sym!(Softplus, 1),
            Scalar::Lgamma => sym!(Lgamma, 1),
            Scalar::Digamma => sym!(Digamma, 1),
            Scalar::Trigamma => sym!(Trigamma, 1),
            Scalar::Sin => sym!(Sin, 1),
            Scalar::Cos => sym!(Cos, 1),
            Scalar::Erf => sym!(Erf, 1),
            Scalar::ErfDeriv => sym!(ErfDeriv, 1),
            Scalar::Phi => sym!(Phi, 1),
            Scalar::PhiDeriv => sym!(PhiDeriv, 1),
            Scalar::Log1m => sym!(Log1m, 1),
            Scalar::LogInvLogit => sym!(LogInvLogit, 1),
            Scalar::Round => sym!(Round, 1),
            Scalar::IntDiv => sym!(IntDiv, 2),
            Scalar::Mod => sym!(Mod, 2),
            Scalar::Pow => sym!(Pow, 2),
            Scalar::PowDa => sym!(PowDa, 3),
            Scalar::PowDb => sym!(PowDb, 3),
            Scalar::LogAddExp => sym!(LogAddExp, 2),
            Scalar::LogAddExpDa => sym!(LogAddExpDa, 2),
            Scalar::LogAddExpDb => sym!(LogAddExpDb, 2),
        }
    }
}

impl Un {
    /// Every function (for tables such as the compiled code's symbols).
    pub const ALL: [Un; 26] = [
        Un::Neg,
        Un::Not,
        Un::Exp,
        Un::Log,
        Un::Log1p,
        Un::Expm1,
        Un::Sqrt,
        Un::Square,
        Un::Abs,
        Un::Tanh,
        Un::Sigmoid,
        Un::Logit,
        Un::Softplus,
        Un::Relu,
        Un::Lgamma,
        Un::Digamma,
        Un::Sin,
        Un::Cos,
        Un::Erf,
        Un::Phi,
        Un::Log1m,
        Un::LogInvLogit,
        Un::Inv,
        Un::Floor,
        Un::Ceil,
        Un::Round,
    ];

    /// The rule for f(x).
    pub fn value<A: Arith>(self, a: &mut A, x: A::V) -> Result<A::V, A::E> {
        let call = |a: &mut A, f: Scalar| a.call(f, &[x]);
        Ok(match self {
            Un::Neg => a.neg(x),
            Un::Not => {
                let z = a.c(0.0);
                a.flag(Cmp::Eq, x, z)
            }
            Un::Exp => call(a, Scalar::Exp)?,
            Un::Log => call(a, Scalar::Ln)?,
            Un::Log1p => call(a, Scalar::Ln1p)?,
            Un::Expm1 => call(a, Scalar::Expm1)?,
            Un::Sqrt => a.sqrt(x),
            Un::Square => a.mul(x, x),
            Un::Abs => a.abs(x),
            Un::Tanh => call(a, Scalar::Tanh)?,
            Un::Sigmoid => call(a, Scalar::Sigmoid)?,
            Un::Logit => call(a, Scalar::Logit)?,
            Un::Softplus => call(a, Scalar::Softplus)?,
            // 0 for NaN, as `f64::max(x, 0)`.
            Un::Relu => {
                let z = a.c(0.0);
                a.pick(Cmp::Gt, x, z, x, z)
            }
            Un::Lgamma => call(a, Scalar::Lgamma)?,
            Un::Digamma => call(a, Scalar::Digamma)?,
            Un::Sin => call(a, Scalar::Sin)?,
            Un::Cos => call(a, Scalar::Cos)?,
            Un::Erf => call(a, Scalar::Erf)?,
            Un::Phi => call(a, Scalar::Phi)?,
            Un::Log1m => call(a, Scalar::Log1m)?,
            Un::LogInvLogit => call(a, Scalar::LogInvLogit)?,
            Un::Inv => {
                let one = a.c(1.0);
                a.div(one, x)
            }
            Un::Floor => a.floor(x),
            Un::Ceil => a.ceil(x),
            Un::Round => call(a, Scalar::Round)?,
        })
    }

    /// The rule for f'(x), given y = f(x).
    pub fn deriv<A: Arith>(self, a: &mut A, x: A::V, y: A::V) -> Result<A::V, A::E> {
        Ok(match self {
            Un::Neg => a.c(-1.0),
            Un::Not | Un::Floor | Un::Ceil | Un::Round => a.c(0.0),
            Un::Exp => y,
            Un::Log => {
                let one = a.c(1.0);
                a.div(one, x)
            }
            Un::Log1p => {
                let one = a.c(1.0);
                let d = a.add(one, x);
                a.div(one, d)
            }
            Un::Expm1 => {
                let one = a.c(1.0);
                a.add(y, one)
            }
            Un::Sqrt => {
                let h = a.c(0.5);
                a.div(h, y)
            }
            Un::Square => {
                let two = a.c(2.0);
                a.mul(two, x)
            }
            // 1, −1 or 0 (at 0 and NaN).
            Un::Abs => {
                let (z, one, m1) = (a.c(0.0), a.c(1.0), a.c(-1.0));
                let s = a.pick(Cmp::Lt, x, z, m1, z);
                a.pick(Cmp::Gt, x, z, one, s)
            }
            Un::Tanh => {
                let one = a.c(1.0);
                let yy = a.mul(y, y);
                a.sub(one, yy)
            }
            Un::Sigmoid => {
                let one = a.c(1.0);
                let om = a.sub(one, y);
                a.mul(y, om)
            }
            Un::Logit => {
                let one = a.c(1.0);
                let om = a.sub(one, x);
                let d = a.mul(x, om);
                a.div(one, d)
            }
            Un::Softplus => a.call(Scalar::Sigmoid, &[x])?,
            Un::Relu => {
                let z = a.c(0.0);
                a.flag(Cmp::Gt, x, z)
            }
            Un::Lgamma => a.call(Scalar::Digamma, &[x])?,
            Un::Digamma => a.call(Scalar::Trigamma, &[x])?,
            Un::Sin => a.call(Scalar::Cos, &[x])?,
            Un::Cos => {
                let s = a.call(Scalar::Sin, &[x])?;
                a.neg(s)
            }
            Un::Erf => a.call(Scalar::ErfDeriv, &[x])?,
            Un::Phi => a.call(Scalar::PhiDeriv, &[x])?,
            Un::Log1m => {
                let (m1, one) = (a.c(-1.0), a.c(1.0));
                let d = a.sub(one, x);
                a.div(m1, d)
            }
            Un::LogInvLogit => {
                let nx = a.neg(x);
                a.call(Scalar::Sigmoid, &[nx])?
            }
            Un::Inv => {
                let m1 = a.c(-1.0);
                let xx = a.mul(x, x);
                a.div(m1, xx)
            }
        })
    }

    /// f(x).
    pub fn f(self, x: f64) -> f64 {
        infallible(self.value(&mut F64, x))
    }

    /// f'(x), given y = f(x).
    pub fn df(self, x: f64, y: f64) -> f64 {
        infallible(self.deriv(&mut F64, x, y))
    }

    /// Whether f' reads x and y (the reverse sweep loads only what it reads).
    pub fn deriv_reads(self) -> (bool, bool) {
        let m = infallible(self.deriv(&mut Reads, READS_A, READS_Y));
        (m & READS_A != 0, m & READS_Y != 0)
    }

    /// The array form of f, for the functions `math::vmath` evaluates four elements at a time
    /// (with the scalar function's bits).
    pub fn array(self) -> Option<fn(&[f64], &mut [f64])> {
        Some(match self {
            Un::Exp => vmath::exp_array,
            Un::Log => vmath::ln_array,
            Un::Log1p => vmath::ln_1p_array,
            Un::Expm1 => vmath::expm1_array,
            Un::Tanh => vmath::tanh_array,
            _ => return None,
        })
    }

    /// The same, on raw buffers of `n` elements (input and output may be the same), as the
    /// compiled code calls it.
    pub fn array_raw(self) -> Option<(&'static str, unsafe extern "C" fn(*const f64, *mut f64, usize))> {
        Some(match self {
            Un::Exp => ("bnnc_v_exp", vmath::exp_raw),
            Un::Log => ("bnnc_v_log", vmath::ln_raw),
            Un::Log1p => ("bnnc_v_log1p", vmath::ln_1p_raw),
            Un::Expm1 => ("bnnc_v_expm1", vmath::expm1_raw),
            Un::Tanh => ("bnnc_v_tanh", vmath::tanh_raw),
            _ => return None,
        })
    }
}

impl Bin {
    /// Every function (for tables such as the compiled code's symbols).
    pub const ALL: [Bin; 18] = [
        Bin::Add,
        Bin::Sub,
        Bin::Mul,
        Bin::Div,
        Bin::IntDiv,
        Bin::Mod,
        Bin::Pow,
        Bin::Min,
        Bin::Max,
        Bin::LogSumExp,
        Bin::Eq,
        Bin::Ne,
        Bin::Lt,
        Bin::Le,
        Bin::Gt,
        Bin::Ge,
        Bin::And,
        Bin::Or,
    ];

    /// The rule for f(a, b).
    pub fn value<A: Arith>(self, ar: &mut A, a: A::V, b: A::V) -> Result<A::V, A::E> {
        Ok(match self {
            Bin::Add => ar.add(a, b),
            Bin::Sub => ar.sub(a, b),
            Bin::Mul => ar.mul(a, b),
            Bin::Div => ar.div(a, b),
            Bin::IntDiv => ar.call(Scalar::IntDiv, &[a, b])?,
            Bin::Mod => ar.call(Scalar::Mod, &[a, b])?,
            Bin::Pow => ar.call(Scalar::Pow, &[a, b])?,
            Bin::Min => ar.min(a, b),
            Bin::Max => ar.max(a, b),
            Bin::LogSumExp => ar.call(Scalar::LogAddExp, &[a, b])?,
            Bin::Eq => ar.flag(Cmp::Eq, a, b),
            Bin::Ne => ar.flag(Cmp::Ne, a, b),
            Bin::Lt => ar.flag(Cmp::Lt, a, b),
            Bin::Le => ar.flag(Cmp::Le, a, b),
            Bin::Gt => ar.flag(Cmp::Gt, a, b),
            Bin::Ge => ar.flag(Cmp::Ge, a, b),
            // 1 when both (either) are nonzero: the product (larger) of their flags.
            Bin::And | Bin::Or => {
                let z = ar.c(0.0);
                let (fa, fb) = (ar.flag(Cmp::Ne, a, z), ar.flag(Cmp::Ne, b, z));
                if self == Bin::And {
                    ar.mul(fa, fb)
                } else {
                    ar.max(fa, fb)
                }
            }
        })
    }

    /// The rule for ∂f/∂a (`wrt_b` false) or ∂f/∂b (true) at (a, b), with y = f(a, b).
    pub fn deriv<A: Arith>(self, ar: &mut A, wrt_b: bool, a: A::V, b: A::V, y: A::V) -> Result<A::V, A::E> {
        Ok(match self {
            Bin::Add => ar.c(1.0),
            Bin::Sub => ar.c(if wrt_b { -1.0 } else { 1.0 }),
            Bin::Mul => {
                if wrt_b {
                    a
                } else {
                    b
                }
            }
            Bin::Div => {
                if wrt_b {
                    let na = ar.neg(a);
                    let bb = ar.mul(b, b);
                    ar.div(na, bb)
                } else {
                    let one = ar.c(1.0);
                    ar.div(one, b)
                }
            }
            Bin::Pow => ar.call(if wrt_b { Scalar::PowDb } else { Scalar::PowDa }, &[a, b, y])?,
            // (1, 0) when a wins (ties included), else (0, 1).
            Bin::Min | Bin::Max => {
                let cc = if self == Bin::Max { Cmp::Ge } else { Cmp::Le };
                let (one, zero) = (ar.c(1.0), ar.c(0.0));
                if wrt_b {
                    ar.pick(cc, a, b, zero, one)
                } else {
                    ar.pick(cc, a, b, one, zero)
                }
            }
            Bin::LogSumExp => ar.call(if wrt_b { Scalar::LogAddExpDb } else { Scalar::LogAddExpDa }, &[a, b])?,
            Bin::IntDiv | Bin::Mod | Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge | Bin::And | Bin::Or => {
                ar.c(0.0)
            }
        })
    }

    pub fn f(self, a: f64, b: f64) -> f64 {
        infallible(self.value(&mut F64, a, b))
    }

    /// (∂f/∂a, ∂f/∂b) at (a, b) with y = f(a, b).
    pub fn df(self, a: f64, b: f64, y: f64) -> (f64, f64) {
        (infallible(self.deriv(&mut F64, false, a, b, y)), infallible(self.deriv(&mut F64, true, a, b, y)))
    }

    /// Whether ∂f/∂a (`wrt_b` false) or ∂f/∂b reads a, b and y.
    pub fn partial_reads(self, wrt_b: bool) -> (bool, bool, bool) {
        let m = infallible(self.deriv(&mut Reads, wrt_b, READS_A, READS_B, READS_Y));
        (m & READS_A != 0, m & READS_B != 0, m & READS_Y != 0)
    }

    /// Results are ints (comparisons, logic, integer arithmetic on ints).
    pub fn is_logical(self) -> bool {
        matches!(self, Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge | Bin::And | Bin::Or)
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

/// The rules on `f64`s.
pub struct F64;

impl Arith for F64 {
    type V = f64;
    type E = Infallible;
    fn c(&mut self, x: f64) -> f64 {
        x
    }
    fn neg(&mut self, x: f64) -> f64 {
        -x
    }
    fn add(&mut self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn sub(&mut self, a: f64, b: f64) -> f64 {
        a - b
    }
    fn mul(&mut self, a: f64, b: f64) -> f64 {
        a * b
    }
    fn div(&mut self, a: f64, b: f64) -> f64 {
        a / b
    }
    fn sqrt(&mut self, x: f64) -> f64 {
        x.sqrt()
    }
    fn abs(&mut self, x: f64) -> f64 {
        x.abs()
    }
    fn floor(&mut self, x: f64) -> f64 {
        x.floor()
    }
    fn ceil(&mut self, x: f64) -> f64 {
        x.ceil()
    }
    fn max(&mut self, a: f64, b: f64) -> f64 {
        a.max(b)
    }
    fn min(&mut self, a: f64, b: f64) -> f64 {
        a.min(b)
    }
    fn pick(&mut self, cc: Cmp, a: f64, b: f64, x: f64, y: f64) -> f64 {
        if cc.holds(a, b) {
            x
        } else {
            y
        }
    }
    fn call(&mut self, f: Scalar, args: &[f64]) -> Result<f64, Infallible> {
        Ok(f.eval(args))
    }
}

const READS_A: u8 = 1;
const READS_B: u8 = 2;
const READS_Y: u8 = 4;

/// The rules on sets of inputs: a value is the set (a bit mask) of the inputs it depends on.
struct Reads;

impl Arith for Reads {
    type V = u8;
    type E = Infallible;
    fn c(&mut self, _: f64) -> u8 {
        0
    }
    fn neg(&mut self, x: u8) -> u8 {
        x
    }
    fn add(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn sub(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn mul(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn div(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn sqrt(&mut self, x: u8) -> u8 {
        x
    }
    fn abs(&mut self, x: u8) -> u8 {
        x
    }
    fn floor(&mut self, x: u8) -> u8 {
        x
    }
    fn ceil(&mut self, x: u8) -> u8 {
        x
    }
    fn max(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn min(&mut self, a: u8, b: u8) -> u8 {
        a | b
    }
    fn pick(&mut self, _: Cmp, a: u8, b: u8, x: u8, y: u8) -> u8 {
        a | b | x | y
    }
    fn call(&mut self, _: Scalar, args: &[u8]) -> Result<u8, Infallible> {
        Ok(args.iter().fold(0, |m, a| m | a))
    }
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + exp(x)) without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// ψ'(x): recurrence up to x ≥ 6, then the asymptotic series (Abramowitz & Stegun 6.4.12).
pub fn trigamma(mut x: f64) -> f64 {
    if x <= 0.0 && x.fract() == 0.0 {
        return f64::NAN;
    }
    let mut acc = 0.0;
    if x < 0.0 {
        // Reflection: ψ'(1 - x) + ψ'(x) = π² / sin²(πx).
        let s = (std::f64::consts::PI * x).sin();
        return -trigamma(1.0 - x) + std::f64::consts::PI * std::f64::consts::PI / (s * s);
    }
    while x < 6.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc + 1.0 / x + x2 / 2.0 + (1.0 / x) * x2 * (1.0 / 6.0 - x2 * (1.0 / 30.0 - x2 * (1.0 / 42.0 - x2 / 30.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules agree with the functions they were written from (values and derivatives
    /// at points across each function's domain, NaNs included, bit for bit).
    #[test]
    fn rules_match_the_direct_formulas() {
        let xs = [-3.5, -1.0, -0.25, 0.0, 0.3, 0.5, 0.999, 1.0, 2.5, 7.0, f64::NAN];
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for x in xs {
            let direct = [
                (Un::Log1p, 1.0 / (1.0 + x)),
                (Un::Logit, 1.0 / (x * (1.0 - x))),
                (Un::Log1m, -1.0 / (1.0 - x)),
                (Un::Inv, -1.0 / (x * x)),
                (Un::Erf, std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp()),
            ];
            for (u, d) in direct {
                assert!(same(u.df(x, u.f(x)), d), "{u:?} at {x}");
            }
            assert!(same(Un::Relu.f(x), if x > 0.0 { x } else { 0.0 }));
            assert!(same(Un::Logit.f(x), (x / (1.0 - x)).ln()));
            for y in xs {
                assert!(same(Bin::Max.f(x, y), x.max(y)), "max {x} {y}");
                assert!(same(Bin::And.f(x, y), (x != 0.0 && y != 0.0) as i64 as f64));
                assert!(same(Bin::Or.f(x, y), (x != 0.0 || y != 0.0) as i64 as f64));
                let p = Bin::Pow.df(x.abs(), y, x.abs().powf(y));
                let b = if y == 0.0 { 0.0 } else { y * x.abs().powf(y - 1.0) };
                assert!(same(p.0, b), "pow {x} {y}");
            }
        }
    }

    #[test]
    fn derivatives_read_what_their_rules_use() {
        assert_eq!(Un::Exp.deriv_reads(), (false, true));
        assert_eq!(Un::Log.deriv_reads(), (true, false));
        assert_eq!(Un::Neg.deriv_reads(), (false, false));
        assert_eq!(Bin::Mul.partial_reads(false), (false, true, false));
        assert_eq!(Bin::Div.partial_reads(true), (true, true, false));
        assert_eq!(Bin::Pow.partial_reads(true), (true, true, true));
        assert_eq!(Bin::Add.partial_reads(false), (false, false, false));
    }
}

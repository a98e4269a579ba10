//! Types, symbolic sizes and variability.
//!
//! Sizes are polynomials with integer coefficients over the names of int data and shape
//! variables (`N`, `K - 1`, `d*units`). Two sizes are the same when their normal forms are;
//! different normal forms are a compile-time shape error (SPEC §4: `matrix[N, D] @ vector[N]`
//! is rejected). A size the checker cannot express as a polynomial is [`Size::Unknown`] and
//! is checked when data is bound.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A polynomial in named int symbols: monomial (sorted symbol names) → coefficient.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Poly(BTreeMap<Vec<String>, i64>);

impl Poly {
    pub fn constant(c: i64) -> Poly {
        let mut m = BTreeMap::new();
        if c != 0 {
            m.insert(Vec::new(), c);
        }
        Poly(m)
    }

    pub fn symbol(name: &str) -> Poly {
        let mut m = BTreeMap::new();
        m.insert(vec![name.to_string()], 1);
        Poly(m)
    }

    pub fn as_const(&self) -> Option<i64> {
        match self.0.len() {
            0 => Some(0),
            1 => self.0.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The symbol names this polynomial mentions.
    pub fn symbols(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().flatten().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    fn insert(&mut self, mono: Vec<String>, c: i64) -> Option<()> {
        let e = self.0.entry(mono.clone()).or_insert(0);
        *e = e.checked_add(c)?;
        if *e == 0 {
            self.0.remove(&mono);
        }
        Some(())
    }

    /// `None` on integer overflow.
    pub fn add(&self, o: &Poly) -> Option<Poly> {
        let mut r = self.clone();
        for (m, c) in &o.0 {
            r.insert(m.clone(), *c)?;
        }
        Some(r)
    }

    pub fn neg(&self) -> Option<Poly> {
        let mut r = Poly::default();
        for (m, c) in &self.0 {
            r.insert(m.clone(), c.checked_neg()?)?;
        }
        Some(r)
    }

    pub fn sub(&self, o: &Poly) -> Option<Poly> {
        self.add(&o.neg()?)
    }

    pub fn mul(&self, o: &Poly) -> Option<Poly> {
        let mut r = Poly::default();
        for (m1, c1) in &self.0 {
            for (m2, c2) in &o.0 {
                let mut m: Vec<String> = m1.iter().chain(m2.iter()).cloned().collect();
                m.sort();
                r.insert(m, c1.checked_mul(*c2)?)?;
            }
        }
        Some(r)
    }

    /// Replace symbols by polynomials; symbols without an entry stay.
    pub fn subst(&self, map: &HashMap<String, Poly>) -> Option<Poly> {
        let mut r = Poly::default();
        for (m, c) in &self.0 {
            let mut term = Poly::constant(*c);
            for s in m {
                let f = map.get(s).cloned().unwrap_or_else(|| Poly::symbol(s));
                term = term.mul(&f)?;
            }
            r = r.add(&term)?;
        }
        Some(r)
    }
}

impl fmt::Display for Poly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("0");
        }
        // Higher degree first, the constant last: `N*K + 2*N - 1`.
        let mut terms: Vec<(&Vec<String>, &i64)> = self.0.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (m, c)) in terms.iter().enumerate() {
            let c = **c;
            let mag = c.unsigned_abs();
            if i == 0 {
                if c < 0 {
                    f.write_str("-")?;
                }
            } else {
                f.write_str(if c < 0 { " - " } else { " + " })?;
            }
            if m.is_empty() {
                write!(f, "{mag}")?;
            } else {
                if mag != 1 {
                    write!(f, "{mag}*")?;
                }
                f.write_str(&m.join("*"))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Poly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A dimension: a polynomial, or unknown until data is bound.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Size {
    Known(Poly),
    Unknown,
}

impl Size {
    pub fn constant(c: i64) -> Size {
        Size::Known(Poly::constant(c))
    }

    pub fn from_opt(p: Option<Poly>) -> Size {
        p.map(Size::Known).unwrap_or(Size::Unknown)
    }

    /// Known to be equal, known to differ, or not known until data is bound.
    pub fn compare(&self, o: &Size) -> Option<bool> {
        match (self, o) {
            (Size::Known(a), Size::Known(b)) => Some(a == b),
            _ => None,
        }
    }

    pub fn differs(&self, o: &Size) -> bool {
        self.compare(o) == Some(false)
    }

    pub fn subst(&self, map: &HashMap<String, Poly>) -> Size {
        match self {
            Size::Known(p) => Size::from_opt(p.subst(map)),
            Size::Unknown => Size::Unknown,
        }
    }

    pub fn sub(&self, o: &Size) -> Size {
        match (self, o) {
            (Size::Known(a), Size::Known(b)) => Size::from_opt(a.sub(b)),
            _ => Size::Unknown,
        }
    }

    pub fn mul(&self, o: &Size) -> Size {
        match (self, o) {
            (Size::Known(a), Size::Known(b)) => Size::from_opt(a.mul(b)),
            _ => Size::Unknown,
        }
    }

    pub fn add(&self, o: &Size) -> Size {
        match (self, o) {
            (Size::Known(a), Size::Known(b)) => Size::from_opt(a.add(b)),
            _ => Size::Unknown,
        }
    }

    /// The number, when the size is a known constant.
    pub fn as_const(&self) -> Option<i64> {
        match self {
            Size::Known(p) => p.as_const(),
            Size::Unknown => None,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Known(p) => write!(f, "{p}"),
            Size::Unknown => f.write_str("?"),
        }
    }
}

/// The type of a value.
#[derive(Clone, PartialEq, Debug)]
pub enum Ty {
    Int,
    Real,
    Vector(Size),
    Matrix(Size, Size),
    Tensor(Vec<Size>),
    /// `array[n] T`; `array[n, m] T` is `Array(n, Array(m, T))`.
    Array(Size, Box<Ty>),
    /// A distribution value (`normal(0, 1)` passed as a `prior`), with its family when known.
    Dist(Option<String>),
    /// A function value (`tanh` passed as `act`), with its name when known.
    Func(Option<String>),
    /// After an error: unifies with everything so one mistake is reported once.
    Error,
}

impl Ty {
    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }

    pub fn is_scalar(&self) -> bool {
        matches!(self, Ty::Int | Ty::Real)
    }

    /// Int, or an array of ints (any depth).
    pub fn is_int_valued(&self) -> bool {
        match self {
            Ty::Int => true,
            Ty::Array(_, e) => e.is_int_valued(),
            _ => false,
        }
    }

    /// A number or a container of numbers (not a `dist` or `fn`).
    pub fn is_numeric(&self) -> bool {
        match self {
            Ty::Int | Ty::Real | Ty::Vector(_) | Ty::Matrix(..) | Ty::Tensor(_) => true,
            Ty::Array(_, e) => e.is_numeric(),
            Ty::Dist(_) | Ty::Func(_) => false,
            Ty::Error => true,
        }
    }

    /// The dimensions of a numeric value, outermost first (empty for scalars).
    pub fn dims(&self) -> Vec<Size> {
        match self {
            Ty::Int | Ty::Real | Ty::Dist(_) | Ty::Func(_) | Ty::Error => Vec::new(),
            Ty::Vector(n) => vec![n.clone()],
            Ty::Matrix(r, c) => vec![r.clone(), c.clone()],
            Ty::Tensor(d) => d.clone(),
            Ty::Array(n, e) => {
                let mut v = vec![n.clone()];
                v.extend(e.dims());
                v
            }
        }
    }

    /// A real-valued container of the given dims: `vector`, `matrix` or `tensor`.
    pub fn real_of_dims(dims: Vec<Size>) -> Ty {
        match dims.len() {
            0 => Ty::Real,
            1 => Ty::Vector(dims[0].clone()),
            2 => Ty::Matrix(dims[0].clone(), dims[1].clone()),
            _ => Ty::Tensor(dims),
        }
    }

    /// An int array of the given dims (an int for none).
    pub fn int_of_dims(dims: &[Size]) -> Ty {
        dims.iter().rev().fold(Ty::Int, |t, d| Ty::Array(d.clone(), Box::new(t)))
    }

    /// The same shape with real elements (ints promote).
    pub fn to_real(&self) -> Ty {
        match self {
            Ty::Int => Ty::Real,
            Ty::Array(..) => Ty::real_of_dims(self.dims()),
            other => other.clone(),
        }
    }

    pub fn subst(&self, map: &HashMap<String, Poly>) -> Ty {
        match self {
            Ty::Vector(n) => Ty::Vector(n.subst(map)),
            Ty::Matrix(r, c) => Ty::Matrix(r.subst(map), c.subst(map)),
            Ty::Tensor(d) => Ty::Tensor(d.iter().map(|s| s.subst(map)).collect()),
            Ty::Array(n, e) => Ty::Array(n.subst(map), Box::new(e.subst(map))),
            other => other.clone(),
        }
    }

    /// The word for the kind of value, for "expected a real, found a dist" messages.
    pub fn kind_word(&self) -> &'static str {
        match self {
            Ty::Int => "an int",
            Ty::Real => "a real",
            Ty::Vector(_) => "a vector",
            Ty::Matrix(..) => "a matrix",
            Ty::Tensor(_) => "a tensor",
            Ty::Array(..) => "an array",
            Ty::Dist(_) => "a distribution",
            Ty::Func(_) => "a function",
            Ty::Error => "an erroneous value",
        }
    }
}

fn join_sizes(d: &[Size]) -> String {
    d.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Int => f.write_str("int"),
            Ty::Real => f.write_str("real"),
            Ty::Vector(n) => write!(f, "vector[{n}]"),
            Ty::Matrix(r, c) => write!(f, "matrix[{r}, {c}]"),
            Ty::Tensor(d) => write!(f, "tensor[{}]", join_sizes(d)),
            Ty::Array(..) => {
                let mut dims = Vec::new();
                let mut t = self;
                while let Ty::Array(n, e) = t {
                    dims.push(n.clone());
                    t = e;
                }
                write!(f, "array[{}] {t}", join_sizes(&dims))
            }
            Ty::Dist(Some(n)) => write!(f, "dist ({n})"),
            Ty::Dist(None) => f.write_str("dist"),
            Ty::Func(Some(n)) => write!(f, "fn ({n})"),
            Ty::Func(None) => f.write_str("fn"),
            Ty::Error => f.write_str("{error}"),
        }
    }
}

/// What a value depends on. Ordered: `Const < Data < Param`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variability {
    /// Known at compile time (literals, layer int arguments, folded ints).
    Const,
    /// Depends on data only (computed once when data is read).
    Data,
    /// Depends on parameters.
    Param,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_normal_form() {
        let n = Poly::symbol("N");
        let k = Poly::symbol("K");
        let a = k.sub(&Poly::constant(1)).unwrap().add(&Poly::constant(1)).unwrap();
        assert_eq!(a, k);
        assert_ne!(n, k);
        let p = n.mul(&k).unwrap().add(&n.mul(&Poly::constant(2)).unwrap()).unwrap().sub(&Poly::constant(1)).unwrap();
        assert_eq!(p.to_string(), "K*N + 2*N - 1");
        let mut m = HashMap::new();
        m.insert("N".to_string(), Poly::constant(3));
        assert_eq!(p.subst(&m).unwrap().to_string(), "3*K + 5");
    }

    #[test]
    fn overflow_is_none() {
        let big = Poly::constant(i64::MAX);
        assert!(big.add(&Poly::constant(1)).is_none());
        assert!(big.mul(&Poly::constant(2)).is_none());
    }
}

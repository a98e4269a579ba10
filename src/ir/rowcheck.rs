//! Whether a minibatch program computes what it claims: `log prior + (N/B) Σ_batch log lik`
//! is an unbiased estimate of the log density only when the likelihood is a sum of one term
//! per observation row. This pass follows, through a minibatch program, which values hold
//! one entry per row of the batch and which are sums over rows, and refuses what couples
//! rows: a row read at another row's index (a recurrence such as `y[t - 1]`), a sum over
//! rows used other than by adding it to `target` (`log(sum(y))`, `mean(x)`), and a value
//! accumulated across rows into a `var`. The row count used as a number (`N * log(sigma)`)
//! is found in the source by [`row_count_as_number`].

use crate::ir::prim::{Bin, Ix, Rows};
use crate::ir::{InputKind, Inst, Prim, Program, Slot, V};
use crate::source::Span;
use crate::syntax::ast::{Expr, ExprKind, Stmt, StmtKind};
use std::collections::HashMap;

/// What a value is with respect to the batch's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Does not read the rows.
    Free,
    /// One entry per row, first dimension B.
    Row,
    /// Row `i` alone, for loop variable `i`.
    Elem(V),
    /// A sum over rows (linear in per-row terms).
    Sum,
}

/// Why rows are coupled, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Coupling {
    pub span: Span,
    pub why: String,
}

/// Check a minibatch program of batch size `b`. `Err` with the first coupling found.
pub fn check(p: &Program, b: usize) -> Result<(), Coupling> {
    let mut c = Checker { p, b, class: HashMap::new(), slots: HashMap::new(), loop_vars: Vec::new() };
    // Twice, so values loaded from a `var` before a later store in a loop see what it holds.
    for _ in 0..2 {
        c.block(0)?;
    }
    Ok(())
}

struct Checker<'p> {
    p: &'p Program,
    b: usize,
    class: HashMap<V, Class>,
    slots: HashMap<Slot, Class>,
    loop_vars: Vec<V>,
}

impl Checker<'_> {
    fn of(&self, v: V) -> Class {
        self.class.get(&v).copied().unwrap_or(Class::Free)
    }

    fn span(&self, v: V) -> Span {
        self.p.origins.get(&v).copied().or_else(|| self.p.store_origins.get(&v).copied()).unwrap_or_default()
    }

    fn fail(&self, v: V, why: impl Into<String>) -> Result<Class, Coupling> {
        Err(Coupling { span: self.span(v), why: why.into() })
    }

    fn block(&mut self, b: usize) -> Result<(), Coupling> {
        for inst in &self.p.blocks[b] {
            match inst {
                Inst::Op { dst, prim, args } => {
                    let c = self.op(*dst, prim, args)?;
                    self.class.insert(*dst, c);
                }
                Inst::For { var, body, .. } => {
                    self.loop_vars.push(*var);
                    self.block(body.0 as usize)?;
                    self.loop_vars.pop();
                }
                Inst::If { then, else_, .. } => {
                    self.block(then.0 as usize)?;
                    self.block(else_.0 as usize)?;
                }
                Inst::Store { slot, ix, index, value } => self.store(*slot, ix, index, *value)?,
                Inst::Init { slot, value } => {
                    let c = value.map_or(Class::Free, |v| self.of(v));
                    self.slots.entry(*slot).or_insert(c);
                }
                Inst::Target { .. } => {}
            }
        }
        Ok(())
    }

    fn store(&mut self, slot: Slot, ix: &[Ix], index: &[V], value: V) -> Result<(), Coupling> {
        let whole = ix.is_empty();
        let rows_first = self.p.slots[slot.0 as usize].shape.first() == Some(&self.b);
        let c = match self.of(value) {
            Class::Free => match self.slots.get(&slot) {
                Some(c) => *c,
                None => Class::Free,
            },
            Class::Row if whole && rows_first => Class::Row,
            Class::Elem(i) if matches!(ix.first(), Some(Ix::Single)) && index.first() == Some(&i) && rows_first => {
                Class::Row
            }
            Class::Sum if !rows_first => Class::Sum,
            _ => {
                return Err(Coupling {
                    span: self.span(value),
                    why: format!(
                        "`{}` accumulates values of several observation rows",
                        self.p.slots[slot.0 as usize].name
                    ),
                })
            }
        };
        self.slots.insert(slot, c);
        Ok(())
    }

    fn op(&mut self, dst: V, prim: &Prim, args: &[V]) -> Result<Class, Coupling> {
        let classes: Vec<Class> = args.iter().map(|a| self.of(*a)).collect();
        // The batch's rows come from a gather by the rows input.
        if let Prim::Input(k) = prim {
            return Ok(match self.p.inputs[*k as usize].kind {
                InputKind::Rows { .. } => Class::Row,
                _ => Class::Free,
            });
        }
        let rank_b = |v: V| self.p.info(v).shape.first() == Some(&self.b);
        if let Prim::Load(slot, ix) = prim {
            let base = self.slots.get(slot).copied().unwrap_or(Class::Free);
            return self.index(dst, base, ix, args, &classes);
        }
        if classes.iter().all(|c| *c == Class::Free) {
            return Ok(Class::Free);
        }
        // Whatever is computed from one row's values alone (that row's density, a mixture's
        // `log_sum_exp` of its densities) is that row's.
        if let (false, Some(i)) = (classes.iter().any(|c| matches!(c, Class::Row | Class::Sum)), single_elem(&classes))
        {
            return Ok(Class::Elem(i));
        }
        match prim {
            Prim::Index(ix) => {
                let base = classes[0];
                // The row variables' gather by the rows input: rows of the batch.
                if matches!(ix.first(), Some(Ix::Gather)) && classes.get(1) == Some(&Class::Row) && base == Class::Free
                {
                    return Ok(Class::Row);
                }
                self.index(dst, base, ix, &args[1..], &classes[1..])
            }
            _ if classes.contains(&Class::Sum) => {
                // Linear in each argument that is a sum; the others free of rows.
                let linear = classes.iter().enumerate().all(|(k, c)| match c {
                    Class::Sum => prim.is_linear_in(k),
                    Class::Free => true,
                    Class::Row | Class::Elem(_) => false,
                });
                // A product of two sums is not linear in either.
                let sums = classes.iter().filter(|c| **c == Class::Sum).count();
                if linear && (sums == 1 || !matches!(prim, Prim::Binary(Bin::Mul | Bin::Div))) {
                    Ok(Class::Sum)
                } else {
                    self.fail(dst, "a sum over the observation rows is used inside the likelihood: a minibatch's sum is not the data's sum scaled")
                }
            }
            _ => match prim.rows() {
                Rows::Elementwise => {
                    let rows = classes.contains(&Class::Row);
                    let elems: Vec<V> =
                        classes.iter().filter_map(|c| if let Class::Elem(i) = c { Some(*i) } else { None }).collect();
                    match (rows, elems.first()) {
                        (true, None) if rank_b(dst) => Ok(Class::Row),
                        (false, Some(i)) if elems.iter().all(|j| j == i) => Ok(Class::Elem(*i)),
                        _ => self.fail(dst, "values of different observation rows are combined"),
                    }
                }
                Rows::FirstArgRows => {
                    let others_free = classes[1..].iter().all(|c| *c == Class::Free);
                    let (from, to) = (&self.p.info(args[0]).shape, &self.p.info(dst).shape);
                    // A row of a matrix (a vector has one row, the whole of it), or a reshape
                    // that keeps the first dimension.
                    let rank = if matches!(prim, Prim::Reshape(_)) { 1 } else { 2 };
                    let keeps_rows = from.len() >= rank && from.first() == to.first();
                    match classes[0] {
                        Class::Row if others_free && keeps_rows && rank_b(dst) => Ok(Class::Row),
                        Class::Elem(i) if others_free => Ok(Class::Elem(i)),
                        _ if matches!(prim, Prim::MatMul) => {
                            self.fail(dst, "a matrix product sums over the observation rows")
                        }
                        _ => self.fail(dst, "a function of all the observation rows together"),
                    }
                }
                // A log density of rows, or their sum: added to `target`, it is the likelihood.
                Rows::Sums => Ok(Class::Sum),
                Rows::Mixes | Rows::Own => self.fail(dst, "a function of all the observation rows together"),
            },
        }
    }

    /// `base[ix]` (its index values `index`, of classes `classes`).
    fn index(&self, dst: V, base: Class, ix: &[Ix], index: &[V], classes: &[Class]) -> Result<Class, Coupling> {
        let from_indices = || -> Result<Class, Coupling> {
            let mut out = Class::Free;
            for c in classes {
                match (out, *c) {
                    (_, Class::Free) => {}
                    (Class::Free, c) if c != Class::Sum => out = c,
                    (a, c) if a == c => {}
                    _ => {
                        return Err(Coupling {
                            span: self.span(dst),
                            why: "indices from different observation rows".into(),
                        })
                    }
                }
            }
            Ok(out)
        };
        match base {
            Class::Free => from_indices(),
            Class::Elem(i) => match from_indices()? {
                Class::Free => Ok(Class::Elem(i)),
                c if c == Class::Elem(i) => Ok(c),
                _ => self.fail(dst, "indices from different observation rows"),
            },
            Class::Sum => Ok(Class::Sum),
            Class::Row => match ix.first() {
                None | Some(Ix::All) => {
                    Ok(if self.p.info(dst).shape.first() == Some(&self.b) { Class::Row } else { Class::Sum })
                }
                Some(Ix::Single) if index.first().is_some_and(|v| self.loop_vars.contains(v)) => {
                    Ok(Class::Elem(index[0]))
                }
                Some(Ix::Single) => self.fail(
                    dst,
                    "an observation row is read at an index other than a loop's own row (a recurrence, or a fixed row)",
                ),
                Some(_) => self.fail(dst, "a range or selection of observation rows is read"),
            },
        }
    }
}

/// The loop variable when every argument that reads the rows reads row `i` of the same loop
/// variable `i`.
fn single_elem(classes: &[Class]) -> Option<V> {
    let mut elems = classes.iter().filter_map(|c| if let Class::Elem(i) = c { Some(*i) } else { None });
    let first = elems.next()?;
    elems.all(|i| i == first).then_some(first)
}

/// Where the model uses the row count `size` as a number (in arithmetic, as an index, in
/// `target`), rather than as a loop bound, a size in a type, or a size argument of a call:
/// a minibatch replaces it by the batch size there too.
pub fn row_count_as_number(stmts: &[Stmt], size: &str) -> Option<Span> {
    fn in_expr(e: &Expr, size: &str, as_size: bool) -> Option<Span> {
        match &e.kind {
            ExprKind::Name(n) if n == size && !as_size => Some(e.span),
            ExprKind::Call { args, .. } => args.iter().find_map(|a| in_expr(&a.value, size, true)),
            ExprKind::Paren(x) => in_expr(x, size, as_size),
            k => k.children().find_map(|c| in_expr(c, size, false)),
        }
    }
    for s in stmts {
        let found = match &s.kind {
            StmtKind::For { body, .. } => row_count_as_number(body, size),
            StmtKind::If { cond, then, else_ } => in_expr(cond, size, false)
                .or_else(|| row_count_as_number(then, size))
                .or_else(|| else_.as_deref().and_then(|e| row_count_as_number(e, size))),
            StmtKind::Let { value, .. } | StmtKind::Target { value } | StmtKind::Return { value } => {
                in_expr(value, size, false)
            }
            StmtKind::Var { init, .. } => init.as_ref().and_then(|e| in_expr(e, size, false)),
            StmtKind::Assign { lhs, rhs, .. } => in_expr(lhs, size, false).or_else(|| in_expr(rhs, size, false)),
            StmtKind::Tilde { lhs, dist } => in_expr(lhs, size, false).or_else(|| in_expr(dist, size, false)),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

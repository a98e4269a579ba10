//! The IR: a flat SSA program over f64 tensors with concrete shapes, plus structured `for`
//! loops, data-dependent `if`s and mutable slots (`var` locals).
//!
//! A program is made after data is bound ([`lower`]): every size is a number, data are
//! constants, and data-only computations have already been evaluated once. It computes two
//! sums: `target` (the model's log density) and `jacobian` (the log-Jacobians of the
//! constraint transforms), from the unconstrained parameter vector.
//!
//! Every SSA value is defined once *per execution of its block*. The reverse sweep needs the
//! primal value of each execution, so each value owns `execs(block) × len` f64s of storage;
//! block execution counts are fixed by the data (loop bounds and `if` conditions in `model`
//! depend on data only) and are counted once when the program is made, by running its
//! parameter-free part.

pub mod adjoint;
pub mod interp;
pub mod lower;
pub mod point;
pub mod prim;
pub mod print;
pub mod rewrite;
pub mod rowblock;
pub mod rowcheck;
pub mod scalar;
pub mod variational;
pub mod vectorise;
pub mod verify;

pub use prim::Prim;

use std::fmt;

/// An SSA value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V(pub u32);

impl V {
    /// Whether no value appears twice in `args` (so an operation may write each argument's
    /// adjoint without another argument's contribution landing in the same place).
    pub fn all_distinct(args: &[V]) -> bool {
        args.iter().enumerate().all(|(i, a)| !args[..i].contains(a))
    }
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// A mutable slot (a `var`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(pub u32);

/// A block: the body of the program, of a loop, or of a branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub shape: Vec<usize>,
    /// Holds integers (exact in f64); no gradient flows through it.
    pub int: bool,
    /// The block that defines it.
    pub block: BlockId,
    /// The source name, when it came from a `let` (for printing).
    pub name: Option<String>,
}

impl ValueInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlotInfo {
    pub shape: Vec<usize>,
    pub int: bool,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Inst {
    /// `dst = prim(args)`
    Op { dst: V, prim: Prim, args: Vec<V> },
    /// `for var in lo..hi { body }`; `var` is defined in `body`'s block.
    For { var: V, lo: V, hi: V, body: BlockId },
    /// `if cond { then } else { else_ }`, on a value that does not depend on parameters.
    If { cond: V, then: BlockId, else_: BlockId },
    /// `slot[ix] = value`: `ix` as in `Prim::Index` (whole slot when empty), `index` its
    /// int arguments.
    Store { slot: Slot, ix: Vec<prim::Ix>, index: Vec<V>, value: V },
    /// Reset a slot to NaN (a `var` declared without a value), or to `value` (with one).
    Init { slot: Slot, value: Option<V> },
    /// `target += sum(value)`, counted in `part` of the density.
    Target { value: V, part: Part },
}

/// Which part of the log density a `target +=` adds to: the likelihood — terms that read the
/// model's observation rows, which a minibatch scales by N/B — or the rest, the prior
/// (parameters' densities, and terms on data that are not per row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Prior,
    Likelihood,
}

/// How one parameter maps from the unconstrained vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamLayout {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: crate::math::transform::Kind,
    /// Position and length in the unconstrained vector.
    pub offset: usize,
    pub free_len: usize,
    /// The value holding the constrained parameter.
    pub value: V,
}

impl ParamLayout {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An observed variable's distribution, as the forward entry computes it: for
/// `y ~ normal(f, sigma)` with `y` data, the family and the values holding `f` and `sigma`.
/// A site inside a loop contributes one group of elements per execution, in order
/// (`y[i] ~ ...` over `i` gives `y`'s elements one by one).
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The observed data variable (`y` for `y` and `y[i]`), or the printed left-hand side.
    pub name: String,
    pub family: crate::math::dist::Family,
    /// The left-hand side (data: the observed values).
    pub lhs: V,
    /// The distribution's arguments in parameter order.
    pub args: Vec<V>,
    /// For `y[t] ~ ...` and `y[idx] ~ ...` on a vector `y`: the positions in `y` (an int or
    /// int array per execution).
    pub index: Option<V>,
    pub span: crate::source::Span,
}

/// A runtime input buffer ([`Prim::Input`]): what the caller fills before an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: InputKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InputKind {
    /// A dropout layer's mask: each element 1 with probability `1 − p`, else 0.
    DropoutMask { p: f64 },
    /// The observation rows a minibatch evaluates (0-based, each below `n`, the data's row
    /// count): the row variables are read at these rows.
    Rows { n: usize },
    /// A scalar weight multiplying one part of the log density (1 until set).
    Weight(Part),
    /// Standard normal noise, drawn afresh by the caller for each evaluation (the local
    /// reparameterisation's; see [`variational`]).
    Noise,
    /// Drop-path's mask of input `input` of the program's join number `join`: 1 (kept) or 0.
    /// `columns` holds how many of FractalNet's columns each of that join's inputs carries,
    /// in order, so that a column chosen for the whole network (global drop-path) names one
    /// input of each join.
    JoinMask { join: usize, input: usize, columns: Vec<usize> },
}

impl InputInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// What the buffer holds until the caller sets it: weights 1, everything else 0.
    pub fn initial(&self) -> Vec<f64> {
        let v = if matches!(self.kind, InputKind::Weight(_) | InputKind::JoinMask { .. }) { 1.0 } else { 0.0 };
        vec![v; self.len()]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A generated quantity: its name and the value holding it.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub value: V,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub values: Vec<ValueInfo>,
    pub slots: Vec<SlotInfo>,
    /// Instructions of each block; block 0 is the log density's body.
    pub blocks: Vec<Vec<Inst>>,
    /// How many times each block runs in one evaluation of the density (fixed by the data;
    /// 1 for the generated-quantities entry block).
    pub execs: Vec<usize>,
    pub params: Vec<ParamLayout>,
    /// Constant tensors (bound data and data-only results), referenced by `Prim::Const`.
    pub consts: Vec<Vec<f64>>,
    /// The generated-quantities program: its entry block (run per draw, no gradient).
    pub generated: Option<BlockId>,
    pub outputs: Vec<Output>,
    /// The runtime input buffers, by [`Prim::Input`] number.
    pub inputs: Vec<InputInfo>,
    /// The observed variables' distributions (forward programs only; see [`lower::Purpose`]).
    pub sites: Vec<Site>,
    /// For a log density's program: the program that computes a draw's constrained values
    /// and generated quantities without evaluating the density ([`lower::Purpose::Draws`]).
    pub draws: Option<Box<Program>>,
    /// For a variational program ([`lower::Options::variational`]): how its parameter vector
    /// is laid out and which priors it leaves to the trainer.
    pub variational: Option<variational::Layout>,
    /// Where in the source an indexing operation (by its result) came from, and a store into
    /// a `var` (by the value it stores): an index that the data put out of range is reported
    /// there.
    pub origins: std::collections::HashMap<V, crate::source::Span>,
    pub store_origins: std::collections::HashMap<V, crate::source::Span>,
}

impl Program {
    /// How many times each value is read (operands, loop bounds, conditions, stores, targets,
    /// parameters, outputs).
    pub fn uses(&self) -> Vec<usize> {
        let mut u = vec![0; self.values.len()];
        let mut add = |v: V| u[v.0 as usize] += 1;
        for block in &self.blocks {
            for inst in block {
                match inst {
                    Inst::Op { args, .. } => args.iter().for_each(|a| add(*a)),
                    Inst::For { lo, hi, .. } => {
                        add(*lo);
                        add(*hi);
                    }
                    Inst::If { cond, .. } => add(*cond),
                    Inst::Store { index, value, .. } => {
                        index.iter().for_each(|a| add(*a));
                        add(*value);
                    }
                    Inst::Init { value, .. } => {
                        if let Some(v) = value {
                            add(*v);
                        }
                    }
                    Inst::Target { value, .. } => add(*value),
                }
            }
        }
        for pl in &self.params {
            add(pl.value);
        }
        for o in &self.outputs {
            add(o.value);
        }
        for s in &self.sites {
            add(s.lhs);
            s.args.iter().chain(&s.index).for_each(|a| add(*a));
        }
        u
    }

    pub fn dim(&self) -> usize {
        self.params.iter().map(|p| p.free_len).sum()
    }

    pub fn info(&self, v: V) -> &ValueInfo {
        &self.values[v.0 as usize]
    }

    pub fn block(&self, b: BlockId) -> &[Inst] {
        &self.blocks[b.0 as usize]
    }

    /// A new value (defined by nobody yet).
    pub fn new_value(&mut self, info: ValueInfo) -> V {
        self.values.push(info);
        V(self.values.len() as u32 - 1)
    }

    /// A new, empty block that has not run yet.
    pub fn new_block(&mut self) -> BlockId {
        self.blocks.push(Vec::new());
        self.execs.push(0);
        BlockId(self.blocks.len() as u32 - 1)
    }
}

pub const ENTRY: BlockId = BlockId(0);

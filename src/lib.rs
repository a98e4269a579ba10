//! bnnc: a probabilistic programming language and compiler for Bayesian models and
//! Bayesian neural networks.
//!
//! ```text
//!  .bnn source ──logos──▶ tokens ──lalrpop (grammar/)──▶ AST (every node spanned)      syntax
//!    ──resolve + check──▶ typed model (names, kinds, types, symbolic shapes)           sema
//!    ──elaborate──▶ layers inlined, compile-time ints folded, fractal recursion expanded,
//!                   parameters named by path (h.W, f.fractal.1.dense.W)
//!    ──bind data──▶ sizes become numbers, data checked                                 data
//!    ──lower for a purpose + its passes──▶ IR: flat SSA over tensors, loops            ir::lower
//!         Density: target and Jacobian, every cost-lowering rewrite (+ its Draws program:
//!                  the transforms and `generated`, run once per kept draw)
//!         Forward: a draw's constrained values → each observed variable's distribution
//!         (options) minibatch rows, part weights, dropout masks; the variational program
//!         of Bayes by Backprop (closed-form KL, local reparameterisation)   ir::variational
//!    ──differentiate──▶ the adjoint sweep (reverse mode, IR to IR)                     ir::adjoint
//!    ──▶ interp (the reference) | jit (Cranelift), chosen in one place                 compiled
//!    ──▶ NUTS, HMC, MAP, ADVI, BBB ──▶ draws (CmdStan CSV) ──▶ summary         infer, methods, summary
//!    ──▶ predict: the forward entry at every draw ──▶ moments, draws, metrics         predict
//! ```
//!
//! [`api`] is the library's front door ([`Model`], [`Data`], [`Fit`]): the same pipeline with
//! `ndarray` arrays in and out.
//!
//! Modules depend downwards only: `cli` (the command line) and `api` (the library) use
//! `predict`, `driver` (file input, the front end) and everything below; `summary` reads
//! what `infer` produced; `infer` sees a model only through [`density::LogDensity`], which
//! `ir::interp` and `jit` implement and which therefore sits beneath them.
//!
//! Each stage can be printed with `bnnc check --emit tokens|ast|elab|ir|ir-ad|ir-forward|ir-draws`.

pub mod api;
pub mod cli;
pub mod compiled;
pub mod data;
pub mod density;
pub mod diag;
pub mod driver;
pub mod infer;
pub mod ir;
pub mod jit;
pub mod math;
pub mod methods;
pub mod plot;
pub mod predict;
pub mod repl;
pub mod sema;
pub mod source;
pub mod summary;
pub mod syntax;

pub use api::{Data, Error, Fit, Model, SampleOptions};

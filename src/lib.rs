//! bnnc: a probabilistic programming language and compiler for Bayesian models and
//! Bayesian neural networks.
//!
//! ```text
//!  .bnn source ──logos──▶ tokens ──lalrpop (grammar/)──▶ AST (every node spanned)
//!    ──resolve + check──▶ typed model (names, kinds, types, symbolic shapes; all errors collected)
//!    ──elaborate──▶ layers inlined, compile-time ints folded, fractal recursion expanded,
//!                   parameters named by path (h.W, f.fractal.1.dense.W)
//! ```
//!
//! Each stage can be printed with `bnnc check --emit tokens|ast|elab`.

pub mod cli;
pub mod data;
pub mod diag;
pub mod driver;
pub mod infer;
pub mod ir;
pub mod jit;
pub mod math;
pub mod sema;
pub mod source;
pub mod summary;
pub mod syntax;

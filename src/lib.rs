//! bnnc: a probabilistic programming language and compiler for Bayesian models and
//! Bayesian neural networks.
//!
//! ```text
//!  .bnn source ──logos──▶ tokens ──lalrpop (grammar/)──▶ AST (every node spanned)      syntax
//!    ──resolve + check──▶ typed model (names, kinds, types, symbolic shapes)           sema
//!    ──elaborate──▶ layers inlined, compile-time ints folded, fractal recursion expanded,
//!                   parameters named by path (h.W, f.fractal.1.dense.W)
//!    ──bind data──▶ sizes become numbers, data checked                                 data
//!    ──lower + rewrite──▶ IR: flat SSA over tensors, structured loops                  ir
//!    ──differentiate──▶ the adjoint sweep (reverse mode, IR to IR)                     ir::adjoint
//!    ──▶ interp (the reference) | jit (Cranelift): impl LogDensity                     ir::interp, jit
//!    ──▶ NUTS, HMC, MAP ──▶ draws (CmdStan CSV) ──▶ summary                            infer, summary
//! ```
//!
//! Modules depend downwards only: `cli` (the command line) uses `driver` (file input, the
//! front end) and everything below; `summary` reads what `infer` produced; `infer` sees a
//! model only through [`density::LogDensity`], which `ir::interp` and `jit` implement and
//! which therefore sits beneath them.
//!
//! Each stage can be printed with `bnnc check --emit tokens|ast|elab|ir|ir-ad`.

pub mod cli;
pub mod compiled;
pub mod data;
pub mod density;
pub mod diag;
pub mod driver;
pub mod infer;
pub mod ir;
pub mod jit;
pub mod predict;
pub mod math;
pub mod sema;
pub mod source;
pub mod summary;
pub mod syntax;

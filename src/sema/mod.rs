//! Semantic analysis: resolve and check (names, kinds, types, symbolic shapes), then
//! elaborate (layers inlined, compile-time ints folded, parameters named by path).
pub mod builtins;
mod calls;
pub mod check;
pub mod elaborate;
mod expr;
pub mod ty;

//! Surface syntax: tokens, the AST, parsing and printing.
pub mod ast;
pub mod parse;
pub mod print;
pub mod token;

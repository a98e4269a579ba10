//! temporary
use crate::diag::{render, Diagnostics, Format};
use crate::source::SourceMap;
pub fn main_cli() -> i32 {
    let path = std::env::args().nth(2).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sm = SourceMap::new();
    let f = sm.add(path.clone(), text.clone());
    let mut d = Diagnostics::new();
    let p = crate::syntax::parse::parse_program(f, &text, &mut d);
    print!("{}", crate::syntax::print::program(&p));
    eprint!("{}", render(&d, &sm, Format::Human { color: false }));
    if d.has_errors() { 1 } else { 0 }
}

//! The printed form of the IR (`bnnc check --emit ir`), used by snapshot tests.

use crate::ir::{BlockId, Inst, Prim, Program, ENTRY};
use std::fmt::Write;

pub fn program(p: &Program) -> String {
    let mut out = String::new();
    for pl in &p.params {
        let _ = writeln!(
            out,
            "param {} {:?} {:?} theta[{}..{}] -> {}",
            pl.name,
            pl.shape,
            pl.kind,
            pl.offset,
            pl.offset + pl.free_len,
            pl.value
        );
    }
    for (i, s) in p.slots.iter().enumerate() {
        let _ = writeln!(out, "slot s{i} {} {:?}{}", s.name, s.shape, if s.int { " int" } else { "" });
    }
    out.push_str("density {\n");
    block(p, ENTRY, 1, &mut out);
    out.push_str("}\n");
    if let Some(g) = p.generated {
        out.push_str("generated {\n");
        block(p, g, 1, &mut out);
        for o in &p.outputs {
            let _ = writeln!(out, "  output {} = {}", o.name, o.value);
        }
        out.push_str("}\n");
    }
    out
}

fn block(p: &Program, b: BlockId, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for inst in p.block(b) {
        match inst {
            Inst::Op { dst, prim, args } => {
                let info = p.info(*dst);
                let a: Vec<String> = args.iter().map(|v| v.to_string()).collect();
                let shown = match prim {
                    Prim::Const(c) => format!("const[{} values]", p.consts[*c as usize].len()),
                    other => format!("{other:?}"),
                };
                let name = info.name.as_ref().map(|n| format!("  // {n}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{pad}{dst}: {:?}{} = {shown}({}){name}",
                    info.shape,
                    if info.int { " int" } else { "" },
                    a.join(", ")
                );
            }
            Inst::For { var, lo, hi, body } => {
                let _ = writeln!(out, "{pad}for {var} in {lo}..{hi} {{");
                block(p, *body, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            Inst::If { cond, then, else_ } => {
                let _ = writeln!(out, "{pad}if {cond} {{");
                block(p, *then, depth + 1, out);
                let _ = writeln!(out, "{pad}}} else {{");
                block(p, *else_, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            Inst::Store { slot, ix, index, value } => {
                let i: Vec<String> = index.iter().map(|v| v.to_string()).collect();
                let _ = writeln!(out, "{pad}store s{}{ix:?}({}) = {value}", slot.0, i.join(", "));
            }
            Inst::Init { slot, value } => {
                let _ = writeln!(
                    out,
                    "{pad}init s{} = {}",
                    slot.0,
                    value.map(|v| v.to_string()).unwrap_or_else(|| "nan".into())
                );
            }
            Inst::Target { value } => {
                let _ = writeln!(out, "{pad}target += {value}");
            }
        }
    }
}

//! The printed form of the IR (`bnnc check --emit ir`), used by snapshot tests.

use crate::ir::adjoint::{Adjoint, Stmt};
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
    for site in &p.sites {
        let a: Vec<String> = site.args.iter().map(|v| v.to_string()).collect();
        let at = site.index.map(|i| format!(" at {i}")).unwrap_or_default();
        let _ = writeln!(out, "observe {}{at} = {} ~ {}({})", site.name, site.lhs, site.family.name(), a.join(", "));
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
            Inst::Target { value, part } => {
                let to = if *part == crate::ir::Part::Likelihood { " (likelihood)" } else { "" };
                let _ = writeln!(out, "{pad}target += {value}{to}");
            }
        }
    }
}

/// The adjoint sweep ([`crate::ir::adjoint`]) as the backends run it (`bnnc check --emit
/// ir-ad`): the density's instructions in reverse, each with the adjoints it reads and adds
/// to. `d%v` is the adjoint
/// of `%v`, `ds0` of slot s0, `dtheta[a..b]` a parameter's slice of the gradient. Operations
/// whose result cannot reach `target` (or does not depend on parameters) have no adjoint and
/// are left out, as are loops whose bodies then have nothing to do. A streamed loop's reverse
/// (run after each iteration's forward) is printed first.
pub fn adjoint(p: &Program) -> String {
    let ad = crate::ir::adjoint::differentiate(p);
    let mut out = String::from("adjoint {\n");
    for st in &ad.early {
        if let Stmt::For { var, lo, hi, stmts: inner, .. } = st {
            let _ = writeln!(out, "  streamed: after each iteration of for {var} in {lo}..{hi} {{");
            stmts(p, &ad, inner, 2, &mut out);
            let _ = writeln!(out, "  }}");
        }
    }
    stmts(p, &ad, &ad.body, 1, &mut out);
    out.push_str("}\n");
    out
}

fn stmts(p: &Program, ad: &Adjoint, body: &[Stmt], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let d = |v: &crate::ir::V| format!("d{v}");
    for st in body {
        match st {
            Stmt::Vjp { dst, prim, args } => {
                let into: Vec<String> = args.iter().filter(|a| ad.has_adj(**a)).map(d).collect();
                let a: Vec<String> = args.iter().map(|v| v.to_string()).collect();
                let mut targets = into.clone();
                match prim {
                    Prim::Constrain(i) => {
                        let pl = &p.params[*i as usize];
                        targets.insert(0, format!("dtheta[{}..{}]", pl.offset, pl.offset + pl.free_len));
                    }
                    Prim::Load(s, _) if ad.slot_has_adj(*s) => targets.push(format!("ds{}", s.0)),
                    _ => {}
                }
                let shown = format!("{prim:?}");
                let jac = if matches!(prim, Prim::Constrain(_)) { " (and log|J|)" } else { "" };
                let to = if targets.is_empty() { "nothing".to_string() } else { targets.join(", ") };
                let _ = writeln!(out, "{pad}{to} += vjp {shown}({}) · d{dst}{jac}", a.join(", "));
            }
            Stmt::For { var, lo, hi, stmts: inner, .. } => {
                let _ = writeln!(out, "{pad}for {var} in reverse {lo}..{hi} {{");
                stmts(p, ad, inner, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            Stmt::If { cond, then_stmts, else_stmts, .. } => {
                let _ = writeln!(out, "{pad}if {cond} {{");
                stmts(p, ad, then_stmts, depth + 1, out);
                let _ = writeln!(out, "{pad}}} else {{");
                stmts(p, ad, else_stmts, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            Stmt::Unstore { slot, ix, index, value } => {
                let i: Vec<String> = index.iter().map(|v| v.to_string()).collect();
                let at = format!("ds{}{ix:?}({})", slot.0, i.join(", "));
                match value {
                    Some(v) => {
                        let _ = writeln!(out, "{pad}d{v} += {at}; {at} = 0");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{at} = 0");
                    }
                }
            }
            Stmt::Uninit { slot, value } => match value {
                Some(v) => {
                    let _ = writeln!(out, "{pad}d{v} += ds{}; ds{} = 0", slot.0, slot.0);
                }
                None => {
                    let _ = writeln!(out, "{pad}ds{} = 0", slot.0);
                }
            },
            Stmt::Seed { value } => {
                let _ = writeln!(out, "{pad}d{value} += 1");
            }
        }
    }
}

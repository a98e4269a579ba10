//! The IR verifier: every value is defined once, before its uses, in its own block or an
//! enclosing one, with the shape its primitive's rule gives. Runs after every pass (lowering,
//! each rewrite) in debug builds, and in any build once [`verify_every_pass`] is called (the
//! tests do).

use crate::ir::{BlockId, Inst, Prim, Program, ENTRY, V};
use std::sync::atomic::{AtomicBool, Ordering};

static ALWAYS: AtomicBool = AtomicBool::new(false);

/// Verify the program after every pass from now on, in release builds too.
pub fn verify_every_pass() {
    ALWAYS.store(true, Ordering::Relaxed);
}

/// The check run after a pass: `Err` names the pass whose output does not verify.
pub fn after_pass(p: &Program, pass: &str) -> Result<(), String> {
    if cfg!(debug_assertions) || ALWAYS.load(Ordering::Relaxed) {
        verify(p).map_err(|e| format!("after {pass}: {e}"))
    } else {
        Ok(())
    }
}

pub fn verify(p: &Program) -> Result<(), String> {
    let mut defined = vec![false; p.values.len()];
    let mut visible: Vec<BlockId> = Vec::new();
    check_block(p, ENTRY, &mut defined, &mut visible)?;
    if let Some(g) = p.generated {
        // Generated quantities run after the density's top level and may read its values.
        visible.push(ENTRY);
        check_block(p, g, &mut defined, &mut visible)?;
    }
    Ok(())
}

fn use_ok(p: &Program, v: V, defined: &[bool], visible: &[BlockId]) -> Result<(), String> {
    let i = v.0 as usize;
    if i >= p.values.len() || !defined[i] {
        return Err(format!("{v} used before it is defined"));
    }
    if !visible.contains(&p.values[i].block) {
        return Err(format!("{v} used outside the block that defines it"));
    }
    Ok(())
}

fn check_block(p: &Program, b: BlockId, defined: &mut [bool], visible: &mut Vec<BlockId>) -> Result<(), String> {
    visible.push(b);
    for inst in p.block(b) {
        match inst {
            Inst::Op { dst, prim, args } => {
                for a in args {
                    use_ok(p, *a, defined, visible)?;
                }
                let d = dst.0 as usize;
                if defined[d] {
                    return Err(format!("{dst} defined twice"));
                }
                if p.values[d].block != b {
                    return Err(format!("{dst} defined in the wrong block"));
                }
                defined[d] = true;
                let leaf = matches!(prim, Prim::Const(_) | Prim::Lit(_) | Prim::Constrain(_) | Prim::Input(_));
                if !leaf {
                    let shapes: Vec<&[usize]> = args.iter().map(|a| p.values[a.0 as usize].shape.as_slice()).collect();
                    let slot_shape = match prim {
                        Prim::Load(s, _) => Some(p.slots[s.0 as usize].shape.as_slice()),
                        _ => None,
                    };
                    let s = prim.shape(&shapes, &p.consts, slot_shape).map_err(|e| format!("{dst}: {e}"))?;
                    if s != p.values[d].shape {
                        return Err(format!("{dst}: shape {:?} but its rule gives {s:?}", p.values[d].shape));
                    }
                }
            }
            Inst::For { var, lo, hi, body } => {
                use_ok(p, *lo, defined, visible)?;
                use_ok(p, *hi, defined, visible)?;
                defined[var.0 as usize] = true;
                check_block(p, *body, defined, visible)?;
            }
            Inst::If { cond, then, else_ } => {
                use_ok(p, *cond, defined, visible)?;
                check_block(p, *then, defined, visible)?;
                check_block(p, *else_, defined, visible)?;
            }
            Inst::Store { index, value, .. } => {
                for v in index {
                    use_ok(p, *v, defined, visible)?;
                }
                use_ok(p, *value, defined, visible)?;
            }
            Inst::Init { value, .. } => {
                if let Some(v) = value {
                    use_ok(p, *v, defined, visible)?;
                }
            }
            Inst::Target { value, .. } => use_ok(p, *value, defined, visible)?,
        }
    }
    visible.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Inst, Program, ValueInfo};

    #[test]
    fn a_pass_whose_output_uses_an_undefined_value_is_named() {
        let info = ValueInfo { shape: vec![], int: false, block: ENTRY, name: None };
        let p = Program {
            values: vec![info],
            blocks: vec![vec![Inst::Target { value: V(0), part: crate::ir::Part::Prior }]],
            execs: vec![1],
            ..Program::default()
        };
        verify_every_pass();
        let e = after_pass(&p, "a test pass").expect_err("%0 is never defined");
        assert!(e.starts_with("after a test pass: %0 used before it is defined"), "{e}");
    }
}

//! Points of the parameter space: constrained values (as JSON, like data) to the
//! unconstrained vector, for `bnnc logp --params` and `--init`.

use crate::density::EvalError;
use crate::ir::interp::Interp;
use crate::ir::Program;
use crate::math::transform;

/// Map constrained parameter values, given by name, to the unconstrained vector. `Err` says
/// which parameter and why (missing, wrong length, outside its support).
pub fn unconstrain(p: &Program, values: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<f64>, String> {
    let mut theta = vec![0.0; p.dim()];
    let mut interp = Interp::new(p);
    for (i, pl) in p.params.iter().enumerate() {
        let v = values.get(&pl.name).ok_or_else(|| format!("parameter `{}` is missing", pl.name))?;
        let mut flat = Vec::new();
        flatten(v, &mut flat).map_err(|e| format!("parameter `{}`: {e}", pl.name))?;
        if flat.len() != pl.len() {
            return Err(format!(
                "parameter `{}` has {} values, its shape {:?} needs {}",
                pl.name,
                flat.len(),
                pl.shape,
                pl.len()
            ));
        }
        let (lb, ub) = interp.bounds_of(&theta, i).map_err(|e: EvalError| format!("bounds of `{}`: {e}", pl.name))?;
        let y = &mut theta[pl.offset..pl.offset + pl.free_len];
        transform::unconstrain(pl.kind, &flat, &lb, &ub, y).map_err(|e| match e.strip_prefix("element [0] ") {
            // A scalar has no elements to name: "parameter `sigma` is -2, below ...".
            Some(rest) if pl.shape.is_empty() => format!("parameter `{}` {rest}", pl.name),
            _ => format!("parameter `{}`: {e}", pl.name),
        })?;
    }
    Ok(theta)
}

fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) -> Result<(), String> {
    match v {
        serde_json::Value::Number(n) => {
            out.push(n.as_f64().ok_or("a number out of range")?);
            Ok(())
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(|x| flatten(x, out)),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" | "Inf" | "-Inf" => Err(format!("\"{s}\" is not a valid parameter value")),
            _ => Err(format!("\"{s}\" is not a number")),
        },
        _ => Err("expected numbers or arrays of numbers".into()),
    }
}

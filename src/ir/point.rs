//! Points of the parameter space: constrained values (as JSON, like data) to the
//! unconstrained vector, for `bnnc logp --params` and `--init`.

use crate::density::EvalError;
use crate::ir::interp::Interp;
use crate::ir::Program;
use crate::math::transform;

/// A starting point as `--init` gives it: the unconstrained values of the parameters the
/// file names, and which coordinates those are. The others start where a chain's random
/// start would put them, uniform on (−2, 2), as CmdStan does with a partial init file.
#[derive(Clone, Debug, PartialEq)]
pub struct Init {
    /// The unconstrained vector, 0 at the coordinates not given.
    pub theta: Vec<f64>,
    /// Whether each coordinate was given.
    pub given: Vec<bool>,
    /// The parameters the file does not name, in declaration order.
    pub missing: Vec<String>,
}

impl Init {
    /// Every parameter given: the one point to start from.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// `x` with the given coordinates put in: a minibatch method's initial weights.
    pub fn apply_to(&self, x: &mut [f64]) {
        x.iter_mut().zip(&self.theta).zip(&self.given).filter(|(_, g)| **g).for_each(|((x, t), _)| *x = *t);
    }

    /// A start: the given coordinates, the others uniform on (−2, 2).
    pub fn draw(&self, rng: &mut impl rand::Rng) -> Vec<f64> {
        use rand::RngExt;
        self.theta.iter().zip(&self.given).map(|(t, g)| if *g { *t } else { rng.random_range(-2.0..2.0) }).collect()
    }
}

/// A random start in `dim` unconstrained coordinates: uniform on (−2, 2), as Stan draws
/// one, with the coordinates `init` gives kept.
pub fn random_start(init: Option<&Init>, dim: usize, rng: &mut impl rand::Rng) -> Vec<f64> {
    use rand::RngExt;
    match init {
        Some(i) => i.draw(rng),
        None => (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect(),
    }
}

/// Map constrained parameter values, given by name, to the unconstrained vector; parameters
/// not named are left to be drawn ([`Init::draw`]). `Err` says which parameter and why
/// (wrong length, outside its support, bounds that depend on a parameter not given).
pub fn unconstrain(p: &Program, values: &serde_json::Map<String, serde_json::Value>) -> Result<Init, String> {
    let mut theta = vec![0.0; p.dim()];
    let mut given = vec![false; p.dim()];
    let mut missing = Vec::new();
    let mut interp = Interp::new(p);
    for (i, pl) in p.params.iter().enumerate() {
        let Some(v) = values.get(&pl.name) else {
            missing.push(pl.name.clone());
            continue;
        };
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
        let bounds_at = |interp: &mut Interp, theta: &[f64]| {
            interp.bounds_of(theta, i).map_err(|e: EvalError| format!("bounds of `{}`: {e}", pl.name))
        };
        let (lb, ub) = bounds_at(&mut interp, &theta)?;
        if !missing.is_empty() {
            // Bounds that move with a parameter not given would change with each draw of it.
            let mut moved = theta.clone();
            moved.iter_mut().zip(&given).filter(|(_, g)| !**g).for_each(|(t, _)| *t = 1.0);
            if bounds_at(&mut interp, &moved)? != (lb.clone(), ub.clone()) {
                return Err(format!(
                    "the bounds of parameter `{}` depend on a parameter the file does not give (`{}`): give it too",
                    pl.name,
                    missing.join("`, `")
                ));
            }
        }
        let y = &mut theta[pl.offset..pl.offset + pl.free_len];
        transform::unconstrain_stack(pl.kind, pl.kind.unit(&pl.shape), &flat, &lb, &ub, y).map_err(|(which, e)| {
            match (which, e.strip_prefix("element [0] ")) {
                // A scalar has no elements to name: "parameter `sigma` is -2, below ...".
                (_, Some(rest)) if pl.shape.is_empty() => format!("parameter `{}` {rest}", pl.name),
                // One of several simplexes: "parameter `p[2]`: the elements ...".
                (Some(b), _) => format!("parameter `{}[{b}]`: {e}", pl.name),
                _ => format!("parameter `{}`: {e}", pl.name),
            }
        })?;
        given[pl.offset..pl.offset + pl.free_len].fill(true);
    }
    Ok(Init { theta, given, missing })
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

//! Expressions over draws: a line in the model's language, compiled once with the same front
//! end (names, types, shapes, coded diagnostics) and evaluated at every draw of a fit.
//!
//! The line becomes the one output of a small model whose parameters are the fit's variables
//! with their concrete shapes (no bounds: each is its own identity transform, so a draw's
//! values are the parameter vector) and whose data are the model's: its draws program
//! ([`crate::ir::lower::Purpose::Draws`]) computes the line from a draw. Earlier `let` lines
//! come before it as outputs of their own. Layer parameters (`h.W`) are not names in the
//! language, so they are not visible to expressions.

use crate::data::BoundData;
use crate::diag::Diagnostics;
use crate::source::SourceMap;

/// A fit's variable: its name and shape, and its columns among the draws; with the type the
/// model declares for it (`vector[J]`), when that type has this shape with the data, so the
/// variable combines with data of the same sizes (`theta - y`).
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub shape: Vec<usize>,
    pub columns: Vec<usize>,
    pub declared: Option<String>,
}

/// Each variable's type as the model declares it (a parameter's, or a generated quantity's),
/// where its sizes, with the data's ints, are the variable's shape.
pub fn with_declared_types(vars: &mut [Var], checked: &crate::sema::check::Checked, data: &BoundData) {
    use crate::sema::ty::{Poly, Size, Ty};
    let ints: std::collections::HashMap<String, Poly> =
        checked.data.iter().filter_map(|d| data.int(&d.name).map(|v| (d.name.clone(), Poly::constant(v)))).collect();
    let declared =
        checked.params.iter().map(|d| (&d.name, &d.decl.ty)).chain(checked.outputs.iter().map(|(n, t)| (n, t)));
    let types: std::collections::HashMap<&String, &Ty> = declared.collect();
    for v in vars.iter_mut() {
        v.declared = types.get(&v.name).and_then(|ty| {
            if !matches!(ty, Ty::Vector(_) | Ty::Matrix(..) | Ty::Tensor(_)) {
                return None;
            }
            let sizes: Option<Vec<usize>> = ty
                .subst(&ints)
                .dims()
                .iter()
                .map(|s| match s {
                    Size::Known(p) => p.as_const().and_then(|c| usize::try_from(c).ok()),
                    Size::Unknown => None,
                })
                .collect();
            (sizes.as_deref() == Some(v.shape.as_slice())).then(|| ty.to_string())
        });
    }
}

/// The fit's variables from its column names (`eta.1` … `eta.8` → `eta`, shape [8]), in order.
pub fn variables(columns: &[String]) -> Vec<Var> {
    let mut out: Vec<Var> = Vec::new();
    for (j, c) in columns.iter().enumerate() {
        if c.ends_with("__") {
            continue;
        }
        let parts: Vec<&str> = c.split('.').collect();
        let k = parts.iter().rev().take_while(|p| p.parse::<usize>().is_ok()).count();
        let name = parts[..parts.len() - k].join(".");
        let idx: Vec<usize> = parts[parts.len() - k..].iter().filter_map(|p| p.parse().ok()).collect();
        match out.last_mut() {
            Some(v) if v.name == name => {
                v.shape.iter_mut().zip(&idx).for_each(|(d, i)| *d = (*d).max(*i));
                v.columns.push(j);
            }
            _ => out.push(Var { name, shape: idx, columns: vec![j], declared: None }),
        }
    }
    out
}

/// `text` with each whole name `from` (not part of a longer name) replaced by `to`, for the
/// pairs given.
fn rename(text: &str, pairs: &[(&str, &str)]) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut out = text.to_string();
    for (from, to) in pairs {
        let mut at = 0;
        while let Some(k) = out[at..].find(from) {
            let (lo, hi) = (at + k, at + k + from.len());
            let before = out[..lo].chars().next_back().is_some_and(ident);
            let after = out[hi..].chars().next().is_some_and(|c| {
                ident(c) && c != '.' || c == '.' && out[hi + 1..].starts_with(|d: char| d.is_ascii_alphabetic())
            });
            if !before && !after {
                out.replace_range(lo..hi, to);
            }
            at = hi;
        }
    }
    out
}

fn type_of(shape: &[usize]) -> String {
    match shape {
        [] => "real".into(),
        [n] => format!("vector[{n}]"),
        [r, c] => format!("matrix[{r}, {c}]"),
        d => format!("tensor[{}]", d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// A compiled line: its values at each draw, element by element.
pub struct Compiled {
    program: crate::ir::Program,
    /// Which fit columns make each draw's parameter vector.
    columns: Vec<usize>,
    /// The output holding the line's value.
    output: usize,
}

/// The source of the small model for `line` after the `lets` (each `name = expr`), or the
/// diagnostics when it does not compile. `data_decls` is the model's `data` block's text.
pub fn compile(
    vars: &[Var],
    data_decls: &str,
    data: Option<&BoundData>,
    lets: &[(String, String)],
    line: &str,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<Compiled> {
    // A layer's parameters (`h.W`) are declared, and written in the lines, under a name of the
    // same length the language accepts (`h_W`), so spans on the typed line stay where they
    // are; not when that name is taken.
    let taken = |m: &str| vars.iter().any(|w| w.name == m);
    let named: Vec<(&Var, String)> = vars
        .iter()
        .filter_map(|v| match v.name.contains('.') {
            false => Some((v, v.name.clone())),
            true => Some(v.name.replace('.', "_")).filter(|m| !taken(m)).map(|m| (v, m)),
        })
        .collect();
    let dotted: Vec<(&str, &str)> =
        named.iter().filter(|(v, m)| v.name != *m).map(|(v, m)| (v.name.as_str(), m.as_str())).collect();
    let typed_line = line;
    let line = &rename(line, &dotted);
    let visible: Vec<&Var> = named.iter().map(|(v, _)| *v).collect();
    let mut text = String::new();
    if data.is_some() && !data_decls.trim().is_empty() {
        text.push_str(&format!("data {{\n{data_decls}\n}}\n"));
    }
    text.push_str("params {\n");
    for (v, name) in &named {
        let ty = v.declared.clone().unwrap_or_else(|| type_of(&v.shape));
        text.push_str(&format!("  {name}: {ty}\n"));
    }
    text.push_str("}\nmodel {\n}\ngenerated {\n");
    for (name, e) in lets {
        text.push_str(&format!("  {name} = {}\n", rename(e, &dotted)));
    }
    // The typed line last, alone on its line; a diagnostic on it is shown on the line as
    // typed (below), not on this wrapper.
    text.push_str("  __value = ");
    let line_start = text.len() as u32;
    let line_end = (text.len() + line.len()) as u32;
    text.push_str(&format!("{line}\n}}\n"));
    let mut fe = crate::driver::frontend_text("<session>", &text, None);
    let p = if fe.diags.has_errors() {
        None
    } else {
        let el = fe.elaborated.clone()?;
        let bound = data.cloned().unwrap_or_default();
        crate::ir::lower::lower_for(&el, &bound, crate::ir::lower::Purpose::Draws, &mut fe.diags)
    };
    let past_line = |sp: &crate::source::Span| fe.user_file == Some(sp.file) && sp.lo >= line_end;
    for d in fe.diags.items() {
        // The wrapper's parameters have no priors, which is what a session means: no warning.
        if d.severity == crate::diag::Severity::Warning {
            continue;
        }
        // A bracket the line leaves open is closed by the wrapper's `}`: only the line's
        // part of it is the user's.
        let mut d = d.clone();
        d.secondary.retain(|l| !past_line(&l.span));
        let d = &d;
        // A syntax error past the typed line (after `a +`, the closing brace) is the line
        // ending too soon: say so at its end.
        let past = d.span.is_some_and(|sp| past_line(&sp));
        if past && matches!(d.code, crate::diag::Code::UnexpectedToken | crate::diag::Code::UnexpectedEof) {
            let at =
                crate::source::Span { file: d.span.map(|sp| sp.file).unwrap_or_default(), lo: line_end, hi: line_end };
            diags.push(
                crate::diag::Diagnostic::error(
                    crate::diag::Code::UnexpectedEof,
                    at,
                    "the line ends before the expression does",
                )
                .with_label("more expected here"),
            );
        } else {
            diags.push(d.clone());
        }
    }
    *sources = fe.sources;
    // Spans on the typed line move to a file holding just that line.
    let user = fe.user_file;
    let typed = sources.add("<input>", typed_line.to_string());
    let moved = |sp: crate::source::Span| -> crate::source::Span {
        if Some(sp.file) == user && sp.lo >= line_start && sp.hi <= line_end + 1 {
            let len = line.len() as u32;
            crate::source::Span { file: typed, lo: (sp.lo - line_start).min(len), hi: (sp.hi - line_start).min(len) }
        } else {
            sp
        }
    };
    let mut shown = Diagnostics::new();
    for d in diags.items() {
        let mut d = d.clone();
        d.span = d.span.map(moved);
        d.secondary.iter_mut().for_each(|l| l.span = moved(l.span));
        shown.push(d);
    }
    *diags = shown;
    let program = p?;
    let output = program.outputs.iter().position(|o| o.name == "__value")?;
    let columns = visible.iter().flat_map(|v| v.columns.iter().copied()).collect();
    Some(Compiled { program, columns, output })
}

impl Compiled {
    /// The shape of the line's value.
    pub fn shape(&self) -> Vec<usize> {
        self.program.values[self.program.outputs[self.output].value.0 as usize].shape.clone()
    }

    /// The value at every draw (`rows`: the fit's rows), element-major: `out[e][d]` is
    /// element `e` at draw `d`. `Err` names the first draw where it cannot be computed.
    pub fn evaluate(&self, rows: &[Vec<f64>], seed: u64) -> Result<Vec<Vec<f64>>, String> {
        let mut interp = crate::ir::interp::Interp::new(&self.program);
        interp.seed(seed);
        let n: usize = self.shape().iter().product();
        let mut out = vec![Vec::with_capacity(rows.len()); n];
        let mut theta = vec![0.0; self.columns.len()];
        for (d, r) in rows.iter().enumerate() {
            theta.iter_mut().zip(&self.columns).for_each(|(t, c)| *t = r[*c]);
            let vals = interp.constrained(&theta, true).map_err(|e| format!("at draw {}: {e}", d + 1))?;
            let v = &vals[self.program.params.len() + self.output].2;
            for (e, x) in v.iter().enumerate() {
                out[e].push(*x);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_from_columns() {
        let cols: Vec<String> = ["lp__", "mu", "eta.1", "eta.2", "W.1.1", "W.1.2", "W.2.1", "W.2.2", "h.b.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let v = variables(&cols);
        let got: Vec<(&str, Vec<usize>)> = v.iter().map(|v| (v.name.as_str(), v.shape.clone())).collect();
        assert_eq!(got, vec![("mu", vec![]), ("eta", vec![2]), ("W", vec![2, 2]), ("h.b", vec![1])]);
        assert_eq!(v[2].columns, vec![4, 5, 6, 7]);
    }
}

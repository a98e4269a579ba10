//! The printed summary table (stansummary's columns) and summary.json.

use crate::summary::stats::Summary;

/// A column of the table: its width, heading and cell, and whether it is a diagnostic of
/// chains (MCSE, ESS, R-hat).
type Column = (usize, &'static str, fn(&Summary) -> String, bool);

const COLUMNS: [Column; 9] = [
    (10, "Mean", |s| num(s.mean), false),
    (9, "MCSE", |s| num(s.mcse), true),
    (9, "StdDev", |s| num(s.sd), false),
    (10, "5%", |s| num(s.q5), false),
    (10, "50%", |s| num(s.q50), false),
    (10, "95%", |s| num(s.q95), false),
    (8, "ESS_bulk", |s| whole(s.ess_bulk), true),
    (8, "ESS_tail", |s| whole(s.ess_tail), true),
    (6, "R_hat", |s| if s.rhat.is_finite() { format!("{:.3}", s.rhat) } else { "nan".into() }, true),
];

/// The table: one row per scalar, with the columns of CmdStan's stansummary. Draws that are
/// not chains (a variational fit's, an ensemble's) have no MCSE, ESS or R-hat: their columns
/// are left out. A point (one draw: a mode) has only its value, as `Estimate`.
pub fn table(rows: &[(String, Summary)]) -> String {
    const ESTIMATE: Column = (10, "Estimate", |s| num(s.mean), false);
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    let chains =
        rows.is_empty() || rows.iter().any(|(_, s)| s.mcse.is_finite() || s.ess_bulk.is_finite() || s.rhat.is_finite());
    let point = !rows.is_empty() && rows.iter().all(|(_, s)| s.sd.is_nan() && s.q5 == s.q95);
    let shown: Vec<&Column> = if point { vec![&ESTIMATE] } else { COLUMNS.iter().filter(|c| chains || !c.3).collect() };
    let mut out = format!("{:<width$}", "");
    shown.iter().for_each(|(w, head, ..)| out.push_str(&format!(" {head:>w$}")));
    out.push('\n');
    for (name, s) in rows {
        out.push_str(&format!("{name:<width$}"));
        shown.iter().for_each(|(w, _, cell, _)| out.push_str(&format!(" {:>w$}", cell(s))));
        out.push('\n');
    }
    out
}

/// Four significant digits, switching to exponent notation for very large or small values.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{x:.3e}")
    } else {
        let digits = if a >= 1000.0 {
            1
        } else if a >= 100.0 {
            2
        } else {
            3
        };
        format!("{x:.digits$}")
    }
}

fn whole(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}", x)
    } else {
        "nan".into()
    }
}

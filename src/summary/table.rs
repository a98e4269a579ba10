//! The printed summary table (stansummary's columns) and summary.json.

use crate::summary::stats::Summary;
use std::fmt::Write;

/// The table: one row per scalar, with the columns of CmdStan's stansummary.
pub fn table(rows: &[(String, Summary)]) -> String {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    // Draws that are not chains (a variational fit's, an ensemble's) have no MCSE, ESS or
    // R-hat: their columns are left out.
    let chains = rows.iter().any(|(_, s)| s.mcse.is_finite() || s.ess_bulk.is_finite() || s.rhat.is_finite());
    if !chains && !rows.is_empty() {
        let _ = writeln!(out, "{:<width$} {:>10} {:>9} {:>10} {:>10} {:>10}", "", "Mean", "StdDev", "5%", "50%", "95%");
        for (name, s) in rows {
            let _ = writeln!(
                out,
                "{:<width$} {:>10} {:>9} {:>10} {:>10} {:>10}",
                name,
                num(s.mean),
                num(s.sd),
                num(s.q5),
                num(s.q50),
                num(s.q95)
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{:<width$} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6}",
        "", "Mean", "MCSE", "StdDev", "5%", "50%", "95%", "ESS_bulk", "ESS_tail", "R_hat"
    );
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "{:<width$} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6}",
            name,
            num(s.mean),
            num(s.mcse),
            num(s.sd),
            num(s.q5),
            num(s.q50),
            num(s.q95),
            whole(s.ess_bulk),
            whole(s.ess_tail),
            if s.rhat.is_finite() { format!("{:.3}", s.rhat) } else { "nan".into() },
        );
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

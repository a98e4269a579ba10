//! The inference methods other than the samplers, as `bnnc run --method M` runs them: each
//! takes the compiled program and the run's configuration, prints its summary, writes what
//! `predict` reads, and returns the exit code.
pub mod advi;
pub mod batches;
pub mod bbb;
pub mod draws;
pub mod laplace;
pub mod map;
pub mod modes;
pub mod sgmcmc;
pub mod swag;
pub mod vi;

/// `n` and the noun for it, singular or plural: "1 epoch", "20 epochs".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

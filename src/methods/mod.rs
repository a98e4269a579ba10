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

//! Inference. Samplers and optimisers see a model only through [`crate::density::LogDensity`].
pub mod adapt;
pub mod minibatch;
pub mod nuts;
pub mod optim;
mod phase;
pub mod run;
pub mod sgmcmc;
pub mod stan_csv;
pub mod vi;

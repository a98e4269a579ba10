//! Inference. Samplers and optimisers see a model only through [`density::LogDensity`].
pub mod adapt;
pub mod density;
pub mod nuts;
pub mod optim;
pub mod run;

//! Inference. Samplers and optimisers see a model only through [`density::LogDensity`].
pub mod density;

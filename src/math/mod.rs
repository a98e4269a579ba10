//! Numerical building blocks: distribution densities with their gradients, and the
//! constraint transforms between a parameter's support and the unconstrained space.
pub mod conv;
pub mod dist;
pub mod eigen;
pub mod reparam;
pub mod transform;
pub mod vmath;

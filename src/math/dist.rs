//! Log densities (with gradients) and random draws for every distribution (SPEC §6).

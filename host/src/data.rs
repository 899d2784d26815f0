//! Datasets and preprocessing live in the `edgefit-data` crate (no tract);
//! re-exported here for the host's modules.

pub use edgefit_data::*;

//! edgefit: fit VGG- and ResNet-family CNNs to small devices.
//!
//! The host library: ONNX import into edgefit's IR ([`import`]), static analysis
//! ([`analysis`]), activation memory planning ([`memory`]) and the reports built
//! on them ([`inspect`]). The `edgefit` binary is a thin CLI over these modules.

pub mod analysis;
pub mod compare;
pub mod compile;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod family;
pub mod fuse;
pub mod import;
pub mod inspect;
pub mod inspect_plan;
pub mod ir;
pub mod layout;
pub mod memory;
pub mod mlperf;
pub mod profiles;
pub mod prune;
pub mod quant;
pub mod reference;
pub mod runner;
pub mod seed;
pub mod speed;
pub mod sweep;
pub mod table;
pub mod variant;

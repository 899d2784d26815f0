//! The variant pipeline `compare` and `sweep` share: import a (pruned)
//! model, calibrate it for int8, compile it, evaluate the plan — and the one
//! error type for every stage, naming the file it was working on.

use std::path::{Path, PathBuf};

use edgefit_engine::{AlignedBytes, Precision};

use crate::compile::{compile_with, CompileError, CompileOptions, CompiledPlan};
use crate::evaluate::{evaluate_data, EvalData, EvalError, EvalReport};
use crate::import::{import_onnx, ImportError, ImportOptions, ImportedModel};
use crate::ir::Graph;
use crate::prune::PruneError;
use crate::quant::calibrate::CalibrationMethod;
use crate::quant::calibrate_graph;
use crate::reference::ReferenceError;
use crate::runner::{PlanRunner, Runner};

/// Why a variant could not be built or measured.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error("bias correction on {path}: {source}")]
    Correction {
        path: PathBuf,
        source: ReferenceError,
    },
    #[error("import {path}: {source}")]
    Import { path: PathBuf, source: ImportError },
    #[error("data for {path}: {source}")]
    Data {
        path: PathBuf,
        source: crate::data::DataError,
    },
    #[error("calibrate {path}: {source}")]
    Calibrate {
        path: PathBuf,
        source: ReferenceError,
    },
    #[error("compile {path}: {source}")]
    Compile { path: PathBuf, source: CompileError },
    #[error("run {path} on tract: {source}")]
    Tract {
        path: PathBuf,
        source: ReferenceError,
    },
    #[error("run {path} ({what}): {source}")]
    Run {
        path: PathBuf,
        what: &'static str,
        source: EvalError,
    },
    #[error("{0}")]
    Plan(String),
}

/// Progress callback: stage, done, total.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// How a variant is pruned (its `sparsity` set).
#[derive(Debug, Clone)]
pub enum Pruning {
    /// Unstructured: the smallest-magnitude weights become zero.
    Magnitude(crate::prune::MagnitudeOptions),
    /// Structured: whole conv output channels go.
    Channels(crate::prune::ChannelOptions),
}

/// Prunes the model at `path` as `how` says, with bias correction at the
/// unpruned model's mean activations over `calib` (preprocessed inputs of
/// `input_shape`) when it is given; returns the pruned model and the
/// sparsity achieved (magnitude: zero weights over the pruned layers';
/// channels: removed over prunable channels).
pub fn prune(
    path: &Path,
    input_shape: &[usize],
    how: &Pruning,
    calib: Option<&[Vec<f32>]>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(tract_onnx::pb::ModelProto, f64), VariantError> {
    use crate::prune::{
        correction_inputs, load_model, magnitude_correction_inputs, prune_channels,
        prune_magnitude_corrected,
    };
    let mut model = load_model(path)?;
    let means = match calib.filter(|c| !c.is_empty()) {
        Some(samples) => {
            let names = match how {
                Pruning::Magnitude(_) => magnitude_correction_inputs(&model)?,
                Pruning::Channels(_) => correction_inputs(&model)?,
            };
            progress(0, 1);
            let means =
                crate::prune::channels::activation_means(path, input_shape, &names, samples)
                    .map_err(|source| VariantError::Correction {
                        path: path.to_owned(),
                        source,
                    })?;
            progress(1, 1);
            Some(means)
        }
        None => None,
    };
    let achieved = match how {
        Pruning::Magnitude(o) => {
            prune_magnitude_corrected(&mut model, o, means.as_ref())?.pruned_sparsity()
        }
        Pruning::Channels(o) => {
            let (n, removed) = prune_channels(&mut model, o, means.as_ref())?.channels();
            removed as f64 / n.max(1) as f64
        }
    };
    Ok((model, achieved))
}

/// Imports `path` as edgefit's IR.
pub fn import(path: &Path) -> Result<ImportedModel, VariantError> {
    import_onnx(path, &ImportOptions::default()).map_err(|source| VariantError::Import {
        path: path.to_owned(),
        source,
    })
}

/// Calibrated activation ranges for an int8 variant of `graph` (imported
/// from `path`), min-max over `calib`; `None` for float precisions.
pub fn ranges(
    path: &Path,
    graph: &Graph,
    precision: Precision,
    calib: &[Vec<f32>],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<Vec<(f32, f32)>>, VariantError> {
    if precision != Precision::Int8 {
        return Ok(None);
    }
    calibrate_graph(path, graph, calib, CalibrationMethod::MinMax, progress)
        .map(Some)
        .map_err(|source| VariantError::Calibrate {
            path: path.to_owned(),
            source,
        })
}

/// Compiles `graph` (imported from `path`) into a plan.
pub fn compile(
    path: &Path,
    graph: &Graph,
    precision: Precision,
    ranges: Option<&[(f32, f32)]>,
    options: CompileOptions,
) -> Result<CompiledPlan, VariantError> {
    compile_with(graph, precision, ranges, 0, options).map_err(|source| VariantError::Compile {
        path: path.to_owned(),
        source,
    })
}

/// A plan laid out for its sizes alone: `graph` with placeholder values in
/// weights that have none (a graph-only export) and placeholder int8
/// ranges. Plan size, arenas and per-layer memory are the compiler's own;
/// the plan computes nothing meaningful and must never be written for a
/// device or evaluated (see [`Graph::with_placeholder_weights`]).
pub fn layout_only(
    path: &Path,
    graph: &Graph,
    precision: Precision,
    options: CompileOptions,
) -> Result<CompiledPlan, VariantError> {
    let placeholder = graph.with_placeholder_weights();
    let ranges =
        (precision == Precision::Int8).then(|| vec![(-1.0f32, 1.0f32); placeholder.tensors.len()]);
    compile(path, &placeholder, precision, ranges.as_deref(), options)
}

/// Evaluates `plan` on `data` with the edgefit engine; `path` names the
/// variant in errors.
pub fn evaluate_plan(
    path: &Path,
    plan: &[u8],
    name: String,
    data: &EvalData<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, VariantError> {
    let run_err = |what| {
        move |source| VariantError::Run {
            path: path.to_owned(),
            what,
            source,
        }
    };
    // On a cache line, as a device keeps it: the f32 kernels read the
    // weights in place, and compare reports this run's latency.
    let image = AlignedBytes::copy_of(plan);
    let mut runner = Runner::Plan(Box::new(
        PlanRunner::new(&image).map_err(|e| run_err("load the plan")(e.into()))?,
    ));
    evaluate_data(&mut runner, "edgefit-engine".into(), name, data, progress)
        .map_err(run_err("the plan"))
}

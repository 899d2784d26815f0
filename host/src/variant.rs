//! The variant pipeline `compare` and `sweep` share: import a (pruned)
//! model, calibrate it for int8, compile it, evaluate the plan — and the one
//! error type for every stage, naming the file it was working on.

use std::path::{Path, PathBuf};

use edgefit_engine::Precision;

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
    let mut runner = Runner::Plan(Box::new(
        PlanRunner::new(plan).map_err(|e| run_err("load the plan")(e.into()))?,
    ));
    evaluate_data(&mut runner, "edgefit-engine".into(), name, data, progress)
        .map_err(run_err("the plan"))
}

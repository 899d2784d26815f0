//! Accuracy against sparsity: prune a model at each sparsity, compile the
//! pruned model at one precision, and evaluate the plan (and the pruned f32
//! model on tract) on the test images.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compile::CompileOptions;
use crate::evaluate::evaluate_data;
use crate::evaluate::EvalData;
use crate::prune::{save_model, ChannelOptions, MagnitudeOptions};
use crate::reference::TractReference;
use crate::runner::Runner;
use crate::variant;
use edgefit_engine::Precision;

/// What can go wrong at one sparsity.
/// Why a sweep point failed: the variant pipeline's error (crate::variant).
pub type SweepError = crate::variant::VariantError;

/// One sparsity of a sweep; every figure measured.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub sparsity_requested: f64,
    /// Magnitude: zero weights over the pruned layers' weights. Channels:
    /// removed channels over the prunable groups' channels.
    pub sparsity_achieved: f64,
    /// Non-zero conv and dense weights.
    pub nonzero_weights: usize,
    /// Multiply-accumulates of the pruned network (dense kernels).
    pub macs: u64,
    /// Top-1 accuracy of the pruned model in f32 on tract.
    pub accuracy_f32_tract: f64,
    /// Top-1 accuracy of the compiled plan on the edgefit engine.
    pub accuracy_plan: f64,
    /// Share of images where the plan predicts what the pruned f32 model does.
    pub agreement_plan_f32: f64,
    pub plan_bytes: usize,
    pub arena_bytes: usize,
}

/// How a sweep prunes; the options' `sparsity` is set per point.
#[derive(Debug, Clone)]
pub enum SweepPrune {
    /// Magnitude pruning, with bias correction on the calibration images if set.
    Magnitude {
        options: MagnitudeOptions,
        correct_bias: bool,
    },
    /// Channel pruning, with bias correction on the calibration images if set.
    Channels {
        options: ChannelOptions,
        correct_bias: bool,
    },
}

/// What to sweep.
pub struct SweepSpec<'a> {
    pub model: &'a Path,
    pub prune: SweepPrune,
    pub precision: Precision,
    /// Calibration inputs (preprocessed) for int8 and bias correction.
    pub calib: &'a [Vec<f32>],
    /// The test samples, their recipe and the model's input shape.
    pub test: &'a EvalData<'a>,
    /// Folder for the pruned models (kept: each is a valid ONNX file).
    pub work_dir: &'a Path,
}

/// Progress of [`sweep_point`]: which stage, done and total images.
pub use crate::variant::Progress;

/// Prunes, compiles and evaluates one sparsity.
pub fn sweep_point(
    spec: &SweepSpec<'_>,
    sparsity: f64,
    progress: Progress<'_>,
) -> Result<SweepPoint, SweepError> {
    let (how, correct_bias) = match &spec.prune {
        SweepPrune::Magnitude {
            options,
            correct_bias,
        } => (
            variant::Pruning::Magnitude(MagnitudeOptions {
                sparsity,
                ..options.clone()
            }),
            *correct_bias,
        ),
        SweepPrune::Channels {
            options,
            correct_bias,
        } => (
            variant::Pruning::Channels(ChannelOptions {
                sparsity,
                ..options.clone()
            }),
            *correct_bias,
        ),
    };
    let calib = (correct_bias && sparsity > 0.0).then_some(spec.calib);
    let mut cb = |d, t| progress("bias correction", d, t);
    let (model, achieved) =
        variant::prune(spec.model, spec.test.input_shape, &how, calib, &mut cb)?;
    let nonzero = crate::prune::nonzero_weights(&model)?;
    let stem = spec
        .model
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let pruned: PathBuf = spec.work_dir.join(format!("{stem}-s{sparsity}.onnx"));
    save_model(&model, &pruned)?;

    let path = || pruned.clone();
    let imported = variant::import(&pruned)?;
    let graph = &imported.graph;
    let mut cb = |d, t| progress("calibrate", d, t);
    let ranges = variant::ranges(&pruned, graph, spec.precision, spec.calib, &mut cb)?;
    let plan = variant::compile(
        &pruned,
        graph,
        spec.precision,
        ranges.as_deref(),
        CompileOptions::default(),
    )?;

    let shape = spec.test.input_shape;
    let tract_err = |source| SweepError::Tract {
        path: path(),
        source,
    };
    let run_err = |what| {
        move |source| SweepError::Run {
            path: path(),
            what,
            source,
        }
    };
    let mut tract = Runner::Tract(TractReference::load(&pruned, shape, &[]).map_err(tract_err)?);
    let name = pruned.display().to_string();
    let mut cb = |d, t| progress("f32 (tract)", d, t);
    let base = evaluate_data(
        &mut tract,
        "tract f32".into(),
        name.clone(),
        spec.test,
        &mut cb,
    )
    .map_err(run_err("tract f32"))?;
    let mut cb = |d, t| progress("plan", d, t);
    let eval = variant::evaluate_plan(&pruned, &plan.bytes, name, spec.test, &mut cb)?;

    Ok(SweepPoint {
        sparsity_requested: sparsity,
        sparsity_achieved: achieved,
        nonzero_weights: nonzero,
        macs: crate::analysis::analyse(graph).totals.macs,
        accuracy_f32_tract: base.accuracy,
        accuracy_plan: eval.accuracy,
        agreement_plan_f32: crate::evaluate::agreement(&eval.predictions, &base.predictions),
        plan_bytes: plan.summary.plan_bytes,
        arena_bytes: plan.summary.arena_bytes,
    })
}

/// The sweep as CSV (one header line, one line per point).
pub fn render_csv(points: &[SweepPoint]) -> String {
    edgefit_report::csv_table(
        &[
            "sparsity_requested",
            "sparsity_achieved",
            "nonzero_weights",
            "macs",
            "accuracy_f32_tract",
            "accuracy_plan",
            "agreement_plan_f32",
            "plan_bytes",
            "arena_bytes",
        ],
        points.iter().map(|p| {
            [
                p.sparsity_requested.to_string(),
                format!("{:.6}", p.sparsity_achieved),
                p.nonzero_weights.to_string(),
                p.macs.to_string(),
                format!("{:.6}", p.accuracy_f32_tract),
                format!("{:.6}", p.accuracy_plan),
                format!("{:.6}", p.agreement_plan_f32),
                p.plan_bytes.to_string(),
                p.arena_bytes.to_string(),
            ]
        }),
    )
}

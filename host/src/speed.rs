//! Speed of the edgefit engine (int8, f16, f32 plans) next to tract f32 on the same
//! inputs: batch 1, one thread, median and p90 wall-clock latency on this host.
//! A benchmark, never a test: this machine is noisy, so compare the ratios from
//! one run.

use std::path::Path;
use std::time::Instant;

use edgefit_engine::{AlignedBytes, KernelPath, Precision};
use serde::Serialize;

use crate::compile::{compile_with, precision_name, CompileError, CompileOptions};
use crate::import::ImportedModel;
use crate::quant::calibrate::CalibrationMethod;
use crate::quant::{calibrate_graph, synthetic_samples};
use crate::reference::TractReference;
use crate::runner::{kernels_name, PlanRunner, RunError, Runner};

pub const SPEED_SCHEMA: &str = "edgefit.speed.v1";

#[derive(Debug, Clone, Serialize)]
pub struct SpeedRow {
    pub engine: String,
    pub precision: &'static str,
    /// How the plan stores and runs its weights: "dense", or for int8 plans
    /// of pruned models "sparse, decoded to scratch" (SIMD kernels) and
    /// "sparse, zero-skipping" (no scratch, as on a microcontroller).
    pub weights: &'static str,
    /// The kernels the engine used, by SIMD extension: for int8
    /// "avx512-vnni", "avx2", "neon-dotprod", "neon" or "none", for f16 / f32
    /// "avx512", "avx2", "neon" or "none"; "tract" for tract's own kernels.
    pub kernels: &'static str,
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    /// tract f32 median / this median.
    pub speedup_vs_tract: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpeedReport {
    pub schema: &'static str,
    /// "measured": wall clock on this host, batch 1, one thread.
    pub source: &'static str,
    pub model: String,
    pub input_shape: Vec<usize>,
    pub host: String,
    pub rows: Vec<SpeedRow>,
    pub note: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeedError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error(transparent)]
    Samples(#[from] crate::quant::SampleSizeError),
}

fn time_runs(runner: &mut Runner, input: &[f32], runs: usize) -> Result<(f64, f64), RunError> {
    runner.run(input)?; // warm-up
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        runner.run(input)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Ok((pick(0.5), pick(0.9)))
}

/// This host's CPU, as the agent describes a board's (`/proc/cpuinfo`'s
/// model name or Arm CPU part, with the architecture): one reader for both.
pub fn cpu_name() -> String {
    edgefit_artifact::cpu_name(std::path::Path::new("/"))
}

/// Times tract f32 and the engine at each precision on one seeded random input.
/// int8 plans are calibrated on a few synthetic inputs: this measures speed only.
/// With `sparse_variants`, int8 is timed three ways: dense weights, sparse
/// weights decoded into scratch, sparse weights on the zero-skipping kernels.
pub fn measure_speed(
    path: &Path,
    model: &ImportedModel,
    precisions: &[Precision],
    runs: usize,
    sparse_variants: bool,
    kernels: &[KernelPath],
    progress: &mut dyn FnMut(&str),
) -> Result<SpeedReport, SpeedError> {
    let g = &model.graph;
    let shape = g.tensor(g.input).shape.clone();
    let input = synthetic_samples(&shape, 1, 42)?.remove(0);
    progress("tract f32");
    let mut tract = Runner::Tract(TractReference::load(path, &shape, &[])?);
    let (t_med, t_p90) = time_runs(&mut tract, &input, runs)?;
    drop(tract);
    let mut rows = vec![SpeedRow {
        engine: "tract".into(),
        precision: "f32",
        runs,
        median_ms: t_med,
        p90_ms: t_p90,
        weights: "dense",
        kernels: "tract",
        speedup_vs_tract: 1.0,
    }];
    for &p in precisions {
        progress(&format!("edgefit {}", precision_name(p)));
        let ranges = if p == Precision::Int8 {
            let samples = synthetic_samples(&shape, 4, 7)?;
            Some(calibrate_graph(
                path,
                g,
                &samples,
                CalibrationMethod::MinMax,
                &mut |_, _| {},
            )?)
        } else {
            None
        };
        let variants: &[(&'static str, bool, bool)] = if p == Precision::Int8 && sparse_variants {
            &[
                ("dense", false, true),
                ("sparse, decoded to scratch", true, true),
                ("sparse, zero-skipping", true, false),
            ]
        } else {
            &[("default", true, true)]
        };
        for &(label, sparse_weights, scratch) in variants {
            let options = CompileOptions {
                sparse_weights,
                scratch,
                ..CompileOptions::default()
            };
            let plan = compile_with(g, p, ranges.as_deref(), 0, options)?;
            let weights = match (label, plan.summary.sparse_tensors) {
                ("default", 0) => "dense",
                ("default", _) => "sparse, decoded to scratch",
                _ => label,
            };
            // On a cache line, as a device keeps it: the f32 kernels read
            // the weights in place. One copy is held while timing.
            let image = AlignedBytes::copy_of(&plan.bytes);
            drop(plan);
            // Each distinct kernel set once (without AVX-512 in the CPU,
            // `no-avx512` is `auto`).
            let mut timed: Vec<&str> = Vec::new();
            for &k in kernels {
                let name = kernels_name(p, k);
                if timed.contains(&name) {
                    continue;
                }
                timed.push(name);
                let runner = PlanRunner::with_kernels(&image, k)?;
                let mut runner = Runner::Plan(Box::new(runner));
                let (med, p90) = time_runs(&mut runner, &input, runs)?;
                rows.push(SpeedRow {
                    engine: "edgefit-engine".into(),
                    precision: precision_name(p),
                    weights,
                    kernels: name,
                    runs,
                    median_ms: med,
                    p90_ms: p90,
                    speedup_vs_tract: t_med / med,
                });
            }
        }
    }
    Ok(SpeedReport {
        schema: SPEED_SCHEMA,
        source: "measured",
        model: path.display().to_string(),
        input_shape: shape,
        host: cpu_name(),
        rows,
        note: "batch 1, one thread, wall clock; int8 calibrated on synthetic inputs (speed only)",
    })
}

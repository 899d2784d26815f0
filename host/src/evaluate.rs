//! `edgefit evaluate`: top-1 accuracy over a labelled dataset, per-image latency
//! (measured on this host, wall clock), the confusion matrix and the agreement of
//! predictions with the f32 reference.

use std::time::Instant;

use serde::Serialize;

use crate::data::Dataset;
use crate::runner::{argmax, RunError, Runner};

pub const EVALUATE_SCHEMA: &str = "edgefit.evaluate.v1";

#[derive(Debug, Clone, Serialize)]
pub struct LatencyStats {
    /// "measured": wall-clock time of one inference on this host, single thread.
    pub source: &'static str,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl LatencyStats {
    pub fn from_samples(mut us: Vec<f64>) -> LatencyStats {
        us.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            us.get(((us.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        LatencyStats {
            source: "measured",
            mean_us: if us.is_empty() {
                0.0
            } else {
                us.iter().sum::<f64>() / us.len() as f64
            },
            p50_us: pick(0.5),
            p90_us: pick(0.9),
            p99_us: pick(0.99),
            min_us: us.first().copied().unwrap_or(0.0),
            max_us: us.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub schema: &'static str,
    /// What ran: e.g. "edgefit-engine int8 plan, avx512-vnni kernels", "tract f32".
    pub engine: String,
    pub model: String,
    pub samples: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub latency: LatencyStats,
    /// `confusion[label][predicted]`.
    pub confusion: Vec<Vec<u32>>,
    /// Predicted class per sample, in dataset order.
    #[serde(skip)]
    pub predictions: Vec<usize>,
    /// Share of samples whose prediction equals the f32 reference's (tract).
    pub agreement_with_reference: Option<f64>,
    pub reference: Option<String>,
}

/// Runs `runner` over `data` (images as pixel/255 in the model's NCHW input shape).
pub fn evaluate(
    runner: &mut Runner,
    engine: String,
    model: String,
    data: &Dataset,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, RunError> {
    let classes = 10;
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut latencies = Vec::with_capacity(data.len());
    let mut predictions = Vec::with_capacity(data.len());
    let mut correct = 0;
    for i in 0..data.len() {
        let input = data.image_f32(i);
        let start = Instant::now();
        let out = runner.run(&input)?;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        let predicted = argmax(&out);
        let label = data.labels[i] as usize;
        if predicted == label {
            correct += 1;
        }
        if predicted < classes {
            confusion[label][predicted] += 1;
        }
        predictions.push(predicted);
        progress(i + 1, data.len());
    }
    Ok(EvalReport {
        schema: EVALUATE_SCHEMA,
        engine,
        model,
        samples: data.len(),
        correct,
        accuracy: if data.is_empty() {
            0.0
        } else {
            correct as f64 / data.len() as f64
        },
        latency: LatencyStats::from_samples(latencies),
        confusion,
        predictions,
        agreement_with_reference: None,
        reference: None,
    })
}

/// Share of equal predictions.
pub fn agreement(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64
}

pub fn render_text(r: &EvalReport) -> String {
    let mut s = format!(
        "{} on {} ({})\naccuracy   {:.2}% ({} / {})\nlatency    mean {:.1} us, p50 {:.1}, p90 {:.1}, p99 {:.1} ({} on this host, one thread)\n",
        r.model,
        r.engine,
        r.samples,
        r.accuracy * 100.0,
        r.correct,
        r.samples,
        r.latency.mean_us,
        r.latency.p50_us,
        r.latency.p90_us,
        r.latency.p99_us,
        r.latency.source
    );
    if let (Some(a), Some(reference)) = (r.agreement_with_reference, &r.reference) {
        s.push_str(&format!(
            "agreement  {:.2}% of top-1 predictions equal {reference}'s\n",
            a * 100.0
        ));
    }
    s
}

//! `edgefit evaluate`: top-1 accuracy over a labelled dataset, per-image latency
//! (measured on this host, wall clock), the confusion matrix and the agreement of
//! predictions with the f32 reference.

use std::time::Instant;

use serde::Serialize;

use crate::data::{ChannelOrder, DataError, DataSource, Dataset, OnBadImage, Recipe};
use crate::runner::{argmax, RunError, Runner};

pub const EVALUATE_SCHEMA: &str = "edgefit.evaluate.v1";

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LatencyStats {
    /// "measured": wall-clock time of one inference on this host, single thread.
    pub source: String,
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
            source: "measured".into(),
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
    /// The dataset: its path and format.
    pub data: String,
    /// The preprocessing recipe, in one line ("none" for float tensors).
    pub preprocess: String,
    pub samples: usize,
    /// The model's output size.
    pub classes: usize,
    /// In label order, where the data names them (image folders, CIFAR meta
    /// files, `--classes FILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    pub correct: usize,
    pub accuracy: f64,
    /// With 5 classes or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5_accuracy: Option<f64>,
    pub latency: LatencyStats,
    /// Reading, decoding and preprocessing, per image: wall clock of the
    /// parallel batches divided by their images (measured on this host).
    pub preprocess_us_per_image: f64,
    pub preprocess_threads: usize,
    /// `confusion[label][predicted]`, up to 100 classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u32>>>,
    /// Top-1 accuracy per class (NaN-free: `null` for a class with no samples),
    /// beyond 100 classes in place of the confusion matrix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_class_accuracy: Option<Vec<Option<f64>>>,
    /// Images left out by `--on-bad-image skip`, with the reason.
    pub skipped: Vec<String>,
    /// Predicted class per sample, in dataset order.
    #[serde(skip)]
    pub predictions: Vec<usize>,
    /// Share of samples whose prediction equals the f32 reference's (tract).
    pub agreement_with_reference: Option<f64>,
    pub reference: Option<String>,
}

/// An evaluation that cannot run: bad data, a label beyond the model's
/// classes, or the model failing.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(
        "{what} has label {label}, but the model has {classes} classes (0..{}): wrong \
         dataset for this model, or a model with the wrong output size",
        classes.saturating_sub(1)
    )]
    LabelOutOfRange {
        what: String,
        label: u32,
        classes: usize,
    },
    #[error("every image was skipped as unreadable ({0} of them)")]
    NothingLeft(usize),
}

/// What to evaluate on: the samples, how images become input tensors, and
/// what to do with a bad image.
pub struct EvalData<'a> {
    pub source: &'a DataSource,
    pub recipe: &'a Recipe,
    pub input_shape: &'a [usize],
    pub on_bad: OnBadImage,
}

/// Samples read and preprocessed per parallel batch.
const BATCH: usize = 256;

/// Runs `runner` over every sample of `data`: top-1 (and top-5) accuracy,
/// per-inference latency, preprocessing time, the confusion matrix.
pub fn evaluate_data(
    runner: &mut Runner,
    engine: String,
    model: String,
    data: &EvalData,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, EvalError> {
    let n = data.source.len();
    let mut classes = 0;
    let mut confusion: Vec<Vec<u32>> = vec![];
    let mut per_class = (vec![], vec![]); // (correct, total)
    let mut latencies = Vec::with_capacity(n);
    let mut predictions = Vec::with_capacity(n);
    let (mut correct, mut correct5, mut skipped) = (0, 0, vec![]);
    let mut preprocess_s = 0.0;
    for start in (0..n).step_by(BATCH) {
        let t0 = Instant::now();
        let (batch, bad) = data.source.tensors(
            start..(start + BATCH).min(n),
            data.recipe,
            data.input_shape,
            data.on_bad,
        )?;
        preprocess_s += t0.elapsed().as_secs_f64();
        skipped.extend(bad);
        for (_, input, label) in batch {
            let t = Instant::now();
            let out = runner.run(&input)?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
            if classes == 0 {
                // The first output fixes the class count: check every label now.
                classes = out.len();
                if let Some((label, at)) = data.source.max_label() {
                    if label as usize >= classes {
                        return Err(EvalError::LabelOutOfRange {
                            what: data.source.name_of(at),
                            label,
                            classes,
                        });
                    }
                }
                if classes <= 100 {
                    confusion = vec![vec![0u32; classes]; classes];
                }
                per_class = (vec![0u32; classes], vec![0u32; classes]);
            }
            let predicted = argmax(&out);
            let top = top_k(&out, 5);
            let label = label as usize;
            if predicted == label {
                correct += 1;
                per_class.0[label] += 1;
            }
            per_class.1[label] += 1;
            if top.contains(&label) {
                correct5 += 1;
            }
            if let Some(row) = confusion.get_mut(label) {
                row[predicted] += 1;
            }
            predictions.push(predicted);
            progress(predictions.len() + skipped.len(), n);
        }
    }
    let samples = predictions.len();
    if samples == 0 && !skipped.is_empty() {
        return Err(EvalError::NothingLeft(skipped.len()));
    }
    let share = |k: usize| {
        if samples == 0 {
            0.0
        } else {
            k as f64 / samples as f64
        }
    };
    Ok(EvalReport {
        schema: EVALUATE_SCHEMA,
        engine,
        model,
        data: format!(
            "{} ({})",
            data.source.path().display(),
            data.source.format()
        ),
        preprocess: if data.source.is_tensors() {
            "none (float tensors in the model's layout)".into()
        } else {
            data.recipe.describe()
        },
        samples,
        classes,
        class_names: data.source.class_names().map(<[String]>::to_vec),
        correct,
        accuracy: share(correct),
        top5_accuracy: (classes >= 5).then(|| share(correct5)),
        latency: LatencyStats::from_samples(latencies),
        preprocess_us_per_image: if n == 0 {
            0.0
        } else {
            preprocess_s * 1e6 / n as f64
        },
        preprocess_threads: rayon::current_num_threads(),
        confusion: (!confusion.is_empty()).then_some(confusion),
        per_class_accuracy: (classes > 100).then(|| {
            per_class
                .0
                .iter()
                .zip(&per_class.1)
                .map(|(&c, &t)| (t > 0).then(|| c as f64 / t as f64))
                .collect()
        }),
        skipped,
        predictions,
        agreement_with_reference: None,
        reference: None,
    })
}

/// Runs `runner` over an IDX dataset with the bundled models' recipe
/// (gray, pixel / 255, the model's NCHW input shape).
pub fn evaluate(
    runner: &mut Runner,
    engine: String,
    model: String,
    data: &Dataset,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, EvalError> {
    let source = data.to_source(std::path::Path::new("IDX images"));
    let recipe = Recipe::plain(ChannelOrder::Gray);
    let shape = [1, 1, data.rows, data.cols];
    let data = EvalData {
        source: &source,
        recipe: &recipe,
        input_shape: &shape,
        on_bad: OnBadImage::Fail,
    };
    evaluate_data(runner, engine, model, &data, progress)
}

/// The `k` largest outputs' indices, largest first (the first on ties).
pub fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
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
        "{} on {} ({})\ndata       {}, {} samples, {} classes\npreprocess {}\naccuracy   {:.2}% top-1 ({} / {})",
        r.model,
        r.engine,
        r.samples,
        r.data,
        r.samples,
        r.classes,
        r.preprocess,
        r.accuracy * 100.0,
        r.correct,
        r.samples,
    );
    if let Some(t5) = r.top5_accuracy {
        s.push_str(&format!(", {:.2}% top-5", t5 * 100.0));
    }
    s.push_str(&format!(
        "\nlatency    mean {:.1} us, p50 {:.1}, p90 {:.1}, p99 {:.1} ({} on this host, one thread)\n\
         reading    {:.1} us per image (read, decode, preprocess; {} threads)\n",
        r.latency.mean_us,
        r.latency.p50_us,
        r.latency.p90_us,
        r.latency.p99_us,
        r.latency.source,
        r.preprocess_us_per_image,
        r.preprocess_threads,
    ));
    // Per class, where the classes are few enough to read.
    if let (Some(conf), true) = (&r.confusion, r.classes <= 20) {
        let names = r.class_names.as_deref().unwrap_or(&[]);
        let cells: Vec<String> = conf
            .iter()
            .enumerate()
            .filter(|(_, row)| row.iter().sum::<u32>() > 0)
            .map(|(c, row)| {
                let n: u32 = row.iter().sum();
                let name = names.get(c).map_or(c.to_string(), |s| format!("{c} {s}"));
                format!("{name} {:.1}% ({n})", 100.0 * row[c] as f64 / n as f64)
            })
            .collect();
        s.push_str(&format!("per class  {}\n", cells.join(", ")));
    }
    if !r.skipped.is_empty() {
        s.push_str(&format!(
            "skipped    {} unreadable images (--on-bad-image skip), first: {}\n",
            r.skipped.len(),
            r.skipped[0]
        ));
    }
    if let (Some(a), Some(reference)) = (r.agreement_with_reference, &r.reference) {
        s.push_str(&format!(
            "agreement  {:.2}% of top-1 predictions equal {reference}'s\n",
            a * 100.0
        ));
    }
    s
}

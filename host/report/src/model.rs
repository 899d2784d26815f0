//! The saved comparison results (`results.json`) and loading/merging them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// The `schema` tag of every results file this crate reads and writes.
pub const RESULTS_SCHEMA: &str = "edgefit.compare.v1";

/// One comparison: every variant of every model checked against every device
/// profile, the verdicts drawn from it, and per-layer memory for the plots.
///
/// Serialised as JSON, `rows` is a list of flat records, so
/// `pd.DataFrame(json.load(f)["rows"])` loads it directly in pandas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Always [`RESULTS_SCHEMA`].
    pub schema: String,
    /// When the comparison ran: ISO-8601 UTC, given by the caller.
    pub created: String,
    /// The machine that ran the comparison (after a merge: every distinct
    /// host, comma-separated).
    pub host: String,
    /// What the verdicts rank by: `"accuracy"`, `"latency"` or `"energy"`.
    pub criterion: String,
    /// One row per variant × profile (× device, after merging bench results).
    pub rows: Vec<Row>,
    /// One verdict per profile.
    #[serde(default)]
    pub verdicts: Vec<Verdict>,
    /// Per-layer memory of each model, for the per-layer plot.
    #[serde(default)]
    pub layers: Vec<LayerMemory>,
    /// The seed's comparison: VGG11/16/19 and ResNet-18/34/50 at ImageNet
    /// size, computed from their graphs (empty where not computed).
    #[serde(default)]
    pub seed: Vec<SeedModel>,
    /// Generated family members (`compare --family`), computed from their
    /// graphs (empty where none were asked for).
    #[serde(default)]
    pub family: Vec<FamilyMember>,
}

/// One generated VGG- or ResNet-style network (`compare --family`), every
/// figure computed from its graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyMember {
    /// e.g. `"vgg16-w0.5-r96"` (its ONNX file is `family/<name>.onnx`).
    pub name: String,
    /// `"VGG"` or `"ResNet"`.
    pub family: String,
    pub depth: u32,
    /// Channel multiplier (1 = torchvision's widths).
    pub width: f64,
    /// Input height and width.
    pub resolution: u32,
    /// Parameters as torchvision counts them.
    pub params: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    pub weight_bytes_int8: u64,
    pub weight_bytes_f16: u64,
    pub weight_bytes_f32: u64,
    /// Layer-by-layer activation arena, int8 and f32 activations.
    pub peak_ram_int8: u64,
    pub peak_ram_f32: u64,
    /// The smallest arena with the leading layers tiled (bands of one row),
    /// where they can be; `None` in files written before tiling existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_ram_int8_tiled: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_ram_f32_tiled: Option<u64>,
    /// Per profile, the precisions that fit (`"int8 tiled"`: only with the
    /// leading layers tiled).
    pub fits: Vec<PrecisionFit>,
}

/// One ImageNet-size network of the seed's comparison, every figure computed
/// from its graph (no weights, no run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedModel {
    /// e.g. `"vgg16"`.
    pub model: String,
    /// `"VGG"` or `"ResNet"`.
    pub architecture: String,
    /// Parameters as torchvision counts them (BatchNorm scale and shift included).
    pub params: u64,
    /// Of the deployed parameters (BatchNorm folded), the share in dense
    /// (fully connected) layers, 0..1.
    pub dense_share: f64,
    /// Multiply-accumulates per 224x224 inference.
    pub macs: u64,
    /// Weight bytes per precision: int8 (biases int32), f16 (biases f32), f32.
    pub weight_bytes_int8: u64,
    pub weight_bytes_f16: u64,
    pub weight_bytes_f32: u64,
    /// Peak activation RAM of the layer-by-layer arena (residual additions
    /// fused, as the compiler does) with int8 and with f32 activations (f16
    /// plans keep f32 activations).
    pub peak_ram_int8: u64,
    pub peak_ram_f32: u64,
    /// The smallest int8 arena with the leading layers tiled, where they
    /// can be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_ram_int8_tiled: Option<u64>,
    /// The layer where the most activation bytes are live (int8).
    pub peak_layer: String,
    /// Per profile, the precisions whose weights fit its flash and whose
    /// arena fits its RAM.
    pub fits: Vec<PrecisionFit>,
    /// Where the figures come from.
    pub source: String,
}

/// Which precisions of a network fit one profile (the seed's comparison
/// and the family sweep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionFit {
    pub profile: String,
    /// `"int8"`, `"f16"`, `"f32"`: those that fit (empty: none); `"int8
    /// tiled"` and so on where one fits only with its leading layers tiled.
    pub precisions: Vec<String>,
}

/// One variant of one model checked against one device profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Model name, e.g. `"vgg-fmnist"`.
    pub model: String,
    /// `"VGG"` or `"ResNet"`.
    pub architecture: String,
    /// e.g. `"int8"`, `"int8 magnitude 50%"`, `"f32"`.
    pub variant: String,
    /// `"int8"`, `"f16"` or `"f32"`.
    pub precision: String,
    /// Fraction of weights pruned; 0 for dense.
    pub sparsity: f64,
    /// Parameter count.
    pub params: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Flash needed for the compiled plan, in bytes.
    pub plan_bytes: u64,
    /// Activation arena plus scratch, in bytes.
    pub arena_bytes: u64,
    /// Arena plus engine state (plus stack when measured), in bytes.
    pub peak_ram_bytes: u64,
    /// Top-1 accuracy on the test set, 0..1; `None` where it could not be
    /// measured (`accuracy_source` says why).
    pub accuracy: Option<f64>,
    /// How many test images `accuracy` was measured on (0: not measured).
    pub accuracy_images: u64,
    /// Where `accuracy` comes from: `"measured on N test images"`, or
    /// `"not measured (no weights)"` for a graph-only export, `"not measured
    /// (no data)"` for a model no test data was given for.
    #[serde(default)]
    pub accuracy_source: String,
    /// Milliseconds per inference, if known.
    pub latency_ms: Option<f64>,
    /// Where `latency_ms` comes from: `"measured on <device>"`,
    /// `"measured on this host"`, `"estimated (<model>)"` or `"not measured"`.
    pub latency_source: String,
    /// Millijoules per inference, if known.
    pub energy_mj: Option<f64>,
    /// Where `energy_mj` comes from: `"measured (<sensor>)"`, `"estimated
    /// (the profile's typical active power, W W)"`
    /// or `"not measured"`.
    pub energy_source: String,
    /// Accuracy divided by average watts while inferring.
    pub accuracy_per_watt: Option<f64>,
    /// Where the watts behind `accuracy_per_watt` come from: `"measured
    /// (<sensor>)"`, `"estimated (the profile's typical active power, W W)"`,
    /// or why there is no figure.
    #[serde(default)]
    pub accuracy_per_watt_source: String,
    /// Device profile name.
    pub profile: String,
    /// Identity of the real device the figures were measured on (bench
    /// results); `None` for host-side comparisons.
    pub device: Option<String>,
    /// Whether `peak_ram_bytes` fits the profile's RAM.
    pub fits_ram: bool,
    /// `ram_limit_bytes - peak_ram_bytes`: negative is a shortfall.
    pub ram_margin_bytes: i64,
    /// Whether `plan_bytes` fits the profile's flash.
    pub fits_flash: bool,
    /// `flash_limit_bytes - plan_bytes`: negative is a shortfall.
    pub flash_margin_bytes: i64,
    /// The profile's RAM available to the model, in bytes.
    pub ram_limit_bytes: u64,
    /// The profile's flash available to the plan, in bytes.
    pub flash_limit_bytes: u64,
    /// CRC-32 of the microcontroller plan (`{:08x}`), which `edgefit bench`
    /// reports too: it ties a device's bench results to this row's variant.
    #[serde(default)]
    pub plan_crc32: Option<String>,
    /// A tiled variant (its leading layers run in bands of rows to fit
    /// this board's RAM): how; `None` for whole-tensor plans.
    #[serde(default)]
    pub tiling: Option<RowTiling>,
}

/// How a tiled variant runs (plan format version 2, `edgefit compile
/// --ram-budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowTiling {
    /// The segment's first and last layers.
    pub first_layer: String,
    pub last_layer: String,
    /// Steps of the segment's last layer.
    pub bands: u32,
    pub rows_per_step: u32,
    /// Multiply-accumulates beyond the untiled plan's, in % (0: rows are
    /// computed once).
    pub extra_macs_percent: f64,
    /// The arena the untiled plan needs.
    pub untiled_arena_bytes: u64,
}

impl RowTiling {
    /// One line: "layers `a` to `b` in 14 bands of 1 row, +0.00% MACs,
    /// 25088 B untiled".
    pub fn describe(&self) -> String {
        format!(
            "layers `{}` to `{}` in {} bands of {} row{}, {:+.2}% MACs, {} B untiled",
            self.first_layer,
            self.last_layer,
            self.bands,
            self.rows_per_step,
            if self.rows_per_step == 1 { "" } else { "s" },
            self.extra_macs_percent,
            self.untiled_arena_bytes
        )
    }
}

/// Which variant to use on one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Device profile name.
    pub profile: String,
    /// The best variant of each architecture that fits (none when nothing fits).
    pub best: Vec<BestVariant>,
    /// The architecture that wins on this board, if one does (none when
    /// nothing fits, when accuracy is not measured, or in files written
    /// before this field existed).
    #[serde(default)]
    pub winner: Option<String>,
    /// The verdict in one sentence, e.g. `"On nrf52840-dk, ..."`.
    pub sentence: String,
}

/// The best variant of one architecture on one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestVariant {
    /// `"VGG"` or `"ResNet"`.
    pub architecture: String,
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Why it was chosen.
    pub why: String,
}

/// Memory of one layer of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMemory {
    /// Model (and variant) name.
    pub model: String,
    /// Layer (operator) name.
    pub layer: String,
    /// Position of the layer in the plan.
    pub index: u32,
    /// Bytes of the layer's output activation.
    pub output_bytes: u64,
    /// Bytes of the layer's weights.
    pub weight_bytes: u64,
}

/// Reads one results file.
fn load_one(path: &Path) -> Result<Results, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let r: Results = serde_json::from_str(&text).map_err(|source| ReportError::Json {
        path: path.to_owned(),
        line: source.line(),
        column: source.column(),
        source,
    })?;
    if r.schema != RESULTS_SCHEMA {
        return Err(ReportError::Schema {
            path: path.to_owned(),
            found: r.schema,
        });
    }
    Ok(r)
}

/// Pushes the items of `more` that are not already in `into` (exact duplicates).
fn merge_unique<T: Serialize>(into: &mut Vec<T>, seen: &mut HashSet<String>, more: Vec<T>) {
    for item in more {
        // Rows hold floats, so compare by their exact JSON text.
        let key = serde_json::to_string(&item).unwrap_or_default();
        if seen.insert(key) {
            into.push(item);
        }
    }
}

/// Loads one or more results files and merges them into one.
///
/// Rows from several files (e.g. one per device or board) are kept side by
/// side in file order; only exact duplicates are dropped, so a row whose
/// model, variant, profile or device differs is never lost. Verdicts and
/// layers are merged the same way. `created` becomes the latest timestamp,
/// `host` every distinct host. All files must rank by the same criterion.
///
/// Errors name the file, and for bad JSON the line and column.
pub fn load_results(paths: &[PathBuf]) -> Result<Results, ReportError> {
    let mut merged: Option<(Results, PathBuf)> = None;
    let (mut rows, mut verdicts, mut layers) = (HashSet::new(), HashSet::new(), HashSet::new());
    for path in paths {
        let r = load_one(path)?;
        let Some((m, first)) = merged.as_mut() else {
            let mut m = Results {
                rows: Vec::new(),
                verdicts: Vec::new(),
                layers: Vec::new(),
                ..r.clone()
            };
            merge_unique(&mut m.rows, &mut rows, r.rows);
            merge_unique(&mut m.verdicts, &mut verdicts, r.verdicts);
            merge_unique(&mut m.layers, &mut layers, r.layers);
            merged = Some((m, path.clone()));
            continue;
        };
        if r.criterion != m.criterion {
            return Err(ReportError::Criterion {
                path: path.clone(),
                found: r.criterion,
                first: first.clone(),
                expected: m.criterion.clone(),
            });
        }
        if r.created > m.created {
            m.created = r.created;
        }
        if !m.host.split(", ").any(|h| h == r.host) {
            m.host = format!("{}, {}", m.host, r.host);
        }
        merge_unique(&mut m.rows, &mut rows, r.rows);
        merge_unique(&mut m.verdicts, &mut verdicts, r.verdicts);
        if m.family.is_empty() {
            m.family = r.family;
        }
        if m.seed.is_empty() {
            m.seed = r.seed;
        }
        merge_unique(&mut m.layers, &mut layers, r.layers);
    }
    merged.map(|(m, _)| m).ok_or(ReportError::NoFiles)
}

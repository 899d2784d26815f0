//! `edgefit compare`: every variant (model x precision x sparsity) of the
//! given models, measured once on this host, then judged against each
//! device profile: does it fit RAM and flash, how fast and at what energy
//! (measured where a device or this host ran it, else estimated from the
//! profile, and labelled so), and which variant of each architecture is best
//! on each board.

use std::path::{Path, PathBuf};

use edgefit_engine::Precision;
use edgefit_profiles::Profile;
use edgefit_report::{
    BestVariant, LayerMemory, Results, Row, RowTiling, Source, Verdict, RESULTS_SCHEMA,
};

use crate::compile::tiling::TilingSummary;

use crate::compile::{precision_name, CompileOptions};
use crate::data::{DataSource, OnBadImage, Recipe};
use crate::device::bench::BenchReport;
use crate::evaluate::EvalData;
use crate::inspect_plan::inspect_plan;
use crate::prune::{load_model, save_model, ChannelOptions, ChannelScope, MagnitudeOptions, Scope};
use crate::variant;
use crate::variant::Pruning;

/// RAM the engine needs besides the arena: the `Engine` value and the
/// per-op state it keeps on the stack (measured as part of the firmware's
/// stack high-water mark; a conservative constant here).
pub const ENGINE_STATE_BYTES: u64 = 128;

/// Why a comparison failed: the variant pipeline's error (crate::variant).
pub type CompareError = crate::variant::VariantError;

/// What to compare.
pub struct CompareSpec<'a> {
    pub models: &'a [PathBuf],
    pub precisions: &'a [Precision],
    /// Magnitude sparsities (LAMP scope); 0 = the model as it is.
    pub sparsities: &'a [f64],
    /// Structured channel-pruning fractions (layer scope); 0 = none.
    pub channel_sparsities: &'a [f64],
    /// The test samples every variant is evaluated on.
    pub test: &'a DataSource,
    /// Calibration samples for int8 (never the test split).
    pub calib: Option<&'a DataSource>,
    /// Each model's preprocessing recipe (same order as `models`); it is
    /// recorded in every plan of that model.
    pub recipes: &'a [Recipe],
    /// Folder for the pruned models.
    pub work_dir: &'a Path,
    /// Folder for the microcontroller plans of every variant (kept: flash
    /// one, bench it, and `edgefit report` merges the bench report).
    pub plans_dir: &'a Path,
    /// Per model (same order as `models`): whether `test` (and `calib`)
    /// suit it. A model they do not suit, like a graph-only export, gets
    /// every static figure and no accuracy.
    pub data_fits: &'a [bool],
    /// Per model: whether `calib` suits it, so pruned variants get bias
    /// correction.
    pub calib_fits: &'a [bool],
    /// Microcontroller profiles and the arena each allows
    /// ([`tile_budgets`]): a variant whose arena exceeds one is tried tiled
    /// for it.
    pub tile_budgets: &'a [(String, u64)],
}

/// The arena budget of every microcontroller profile: its RAM less the
/// firmware's and the engine's own ([`Profile::arena_budget_bytes`]).
pub fn tile_budgets(profiles: &[Profile]) -> Vec<(String, u64)> {
    profiles
        .iter()
        .filter(|p| p.kind == edgefit_profiles::Kind::Mcu)
        .map(|p| {
            (
                p.name.clone(),
                p.arena_budget_bytes().saturating_sub(ENGINE_STATE_BYTES),
            )
        })
        .collect()
}

/// Why a variant's accuracy is not measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMeasured {
    /// A graph-only export: its weights have no values.
    NoWeights,
    /// No test data suits the model's input.
    NoData,
}

impl NotMeasured {
    /// The row's `accuracy_source`.
    pub fn source(self) -> &'static str {
        match self {
            NotMeasured::NoWeights => "not measured (no weights)",
            NotMeasured::NoData => "not measured (no data)",
        }
    }
}

/// One variant, measured on this host.
#[derive(Debug, Clone)]
pub struct Variant {
    pub model: String,
    pub architecture: String,
    pub variant: String,
    pub precision: Precision,
    pub sparsity: f64,
    pub params: u64,
    pub macs: u64,
    pub plan_bytes: u64,
    /// Activation arena (what a microcontroller plan, without scratch, needs).
    pub arena_bytes: u64,
    /// Scratch the fast host kernels add on Linux boards.
    pub scratch_bytes: u64,
    /// Top-1 accuracy, or why it was not measured.
    pub accuracy: Result<f64, NotMeasured>,
    pub images: u64,
    /// Median per-image latency of the engine on this host, in ms (not
    /// measured where the accuracy is not).
    pub host_latency_ms: Option<f64>,
    /// The plan file for microcontrollers (no scratch); `None` for a
    /// variant laid out for its sizes only, which must not run.
    pub plan_path: Option<PathBuf>,
    /// Its CRC-32, as `edgefit bench` reports it.
    pub plan_crc32: Option<String>,
    pub layers: Vec<LayerMemory>,
    /// The profiles this variant was made for (a tiled variant, for the
    /// boards whose RAM the untiled one exceeds); empty: every profile.
    pub profiles: Vec<String>,
    /// How its leading layers run in bands, for a tiled variant.
    pub tiling: Option<TilingSummary>,
}

/// The tiled variants of `base` (whose microcontroller plan is `plan`):
/// one per distinct arena budget of `spec.tile_budgets` that the plan
/// exceeds and tiling reaches, compiled by `compile(budget)`; written next to
/// the untiled plan when `base` has a plan file. Tiled plans compute the
/// untiled plan's bytes, so they share its accuracy.
fn tiled_variants(
    spec: &CompareSpec<'_>,
    base: &Variant,
    recipe: &Recipe,
    compile: impl Fn(usize) -> Result<crate::compile::CompiledPlan, CompareError>,
) -> Result<Vec<Variant>, CompareError> {
    let mut budgets: Vec<u64> = spec
        .tile_budgets
        .iter()
        .map(|(_, b)| *b)
        .filter(|&b| base.arena_bytes > b)
        .collect();
    budgets.sort_unstable();
    budgets.dedup();
    let mut out = vec![];
    for budget in budgets {
        let plan = match compile(budget as usize) {
            Ok(p) => p,
            Err(CompareError::Compile {
                source: crate::compile::CompileError::OverBudget { .. },
                ..
            }) => continue,
            Err(e) => return Err(e),
        };
        let Some(t) = plan.summary.tiling.clone() else {
            continue;
        };
        let bytes =
            edgefit_engine::writer::append_metadata(&plan.bytes, &recipe.to_plan_metadata())
                .map_err(|e| CompareError::Plan(e.to_string()))?;
        let label = format!(
            "{}, tiled, {} bands, {:+.1}% MACs",
            base.variant, t.bands, t.extra_macs_percent
        );
        let what = format!("{} {label}", base.model);
        let plan_path = match &base.plan_path {
            Some(p) => {
                let path = p.with_file_name(format!(
                    "{}-tiled-{}.efp",
                    p.file_stem()
                        .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                    budget
                ));
                std::fs::write(&path, &bytes)
                    .map_err(|e| CompareError::Plan(format!("write {}: {e}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        out.push(Variant {
            variant: label,
            // The MACs the tiled plan does: latency estimates follow them.
            macs: base.macs.saturating_add_signed(t.extra_macs),
            plan_bytes: bytes.len() as u64,
            arena_bytes: plan.summary.arena_bytes as u64,
            host_latency_ms: None,
            plan_crc32: plan_path
                .as_ref()
                .map(|_| format!("{:08x}", edgefit_proto::crc32(&bytes))),
            layers: layer_memory(&what, &bytes, &what)?,
            profiles: spec
                .tile_budgets
                .iter()
                .filter(|(_, b)| *b == budget)
                .map(|(n, _)| n.clone())
                .collect(),
            tiling: Some(t),
            plan_path,
            ..base.clone()
        });
    }
    Ok(out)
}

/// Progress: stage description, done, total.
pub use crate::variant::Progress;

/// "VGG" or "ResNet" from the model card next to the model
/// (`M.json`'s "architecture" starts with it), else from the graph: residual
/// additions make a ResNet.
fn architecture(path: &Path, graph: &crate::ir::Graph) -> String {
    let card = std::fs::read_to_string(path.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("architecture")?.as_str().map(str::to_owned));
    if let Some(a) = card {
        let lower = a.to_ascii_lowercase();
        if lower.starts_with("resnet") {
            return "ResNet".into();
        }
        if lower.starts_with("vgg") {
            return "VGG".into();
        }
    }
    let has_add = graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, crate::ir::Op::Add { .. }));
    if has_add { "ResNet" } else { "VGG" }.into()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned())
}

/// Measures every variant of every model on this host.
pub fn measure_variants(
    spec: &CompareSpec<'_>,
    progress: Progress<'_>,
) -> Result<Vec<Variant>, CompareError> {
    let mut out = Vec::new();
    for (m, model_path) in spec.models.iter().enumerate() {
        let name = stem(model_path);
        let recipe = &spec.recipes[m];
        let original = load_model(model_path)?;
        // The model's calibration inputs, preprocessed with its recipe (once:
        // pruning keeps the input).
        let mut calib: Option<Vec<Vec<f32>>> = None;
        let weights_total = crate::prune::nonzero_weights(&original)? as u64;
        // A graph-only export has no weight initializers (its weights are
        // graph inputs); the imported graph confirms it below.
        let unmeasured = if weights_total == 0 {
            Some(NotMeasured::NoWeights)
        } else if !spec.data_fits.get(m).copied().unwrap_or(true) {
            Some(NotMeasured::NoData)
        } else {
            None
        };
        // The model as it is, LAMP magnitude pruning, structured channel
        // pruning: (how, sparsity, label suffix).
        let mut prunings: Vec<(Option<Pruning>, f64, String)> = Vec::new();
        for &sparsity in spec.sparsities {
            prunings.push(if sparsity > 0.0 {
                (
                    Some(Pruning::Magnitude(MagnitudeOptions {
                        sparsity,
                        scope: Scope::Lamp,
                        exclude_first: false,
                        exclude_last: false,
                    })),
                    sparsity,
                    format!(" LAMP {:.0}%", sparsity * 100.0),
                )
            } else {
                (None, 0.0, String::new())
            });
        }
        for &sparsity in spec.channel_sparsities.iter().filter(|s| **s > 0.0) {
            prunings.push((
                Some(Pruning::Channels(ChannelOptions {
                    sparsity,
                    scope: ChannelScope::Layer,
                    exclude_first: false,
                    exclude_last: false,
                })),
                sparsity,
                format!(" channels {:.0}%", sparsity * 100.0),
            ));
        }
        // The model's input shape, for pruning's bias correction (read once).
        let mut shape: Option<Vec<usize>> = None;
        for (how, sparsity, suffix) in prunings {
            if how.is_some() && unmeasured == Some(NotMeasured::NoWeights) {
                // Pruning needs the weights' values.
                progress(&format!("{name}: no weights, no pruned variants"), 1, 1);
                continue;
            }
            // The pruned model (or the original) and its non-zero conv/dense
            // weights. Bias correction wherever calibration data suit the
            // model: the loss LAMP with correction leaves is the smallest
            // this project measured.
            let (source, nonzero) = match &how {
                Some(how) => {
                    let shape = match &shape {
                        Some(s) => s.clone(),
                        None => shape.insert(model_input_shape(model_path)?).clone(),
                    };
                    let corrects = unmeasured.is_none()
                        && spec.calib.is_some()
                        && spec.calib_fits.get(m).copied().unwrap_or(false);
                    if corrects && calib.is_none() {
                        calib = Some(calibration(spec, model_path, recipe, &shape)?);
                    }
                    let mut cb = |d, t| progress(&format!("{name}{suffix}: bias correction"), d, t);
                    let samples = if corrects { calib.as_deref() } else { None };
                    let (pruned, _) = variant::prune(model_path, &shape, how, samples, &mut cb)?;
                    let tag = suffix.trim().replace([' ', '%'], "");
                    let p = spec.work_dir.join(format!("{name}-{tag}.onnx"));
                    save_model(&pruned, &p)?;
                    (p, crate::prune::nonzero_weights(&pruned)? as u64)
                }
                None => (model_path.clone(), weights_total),
            };
            let imported = variant::import(&source)?;
            let graph = &imported.graph;
            let arch = architecture(model_path, graph);
            let analysis = crate::analysis::analyse(graph);
            // Parameters as deployed: zeros pruned away do not count
            // (channel pruning leaves none; its graph is smaller).
            let params = match how {
                Some(Pruning::Channels(_)) => analysis.totals.params as u64,
                _ => (analysis.totals.params as u64)
                    .saturating_sub(weights_total.saturating_sub(nonzero)),
            };
            for &precision in spec.precisions {
                let pname = precision_name(precision);
                let label = format!("{pname}{suffix}");
                let what = format!("{name} {label}");
                let input_shape = graph.tensor(graph.input).shape.clone();
                let unmeasured = if graph.has_weight_values() {
                    unmeasured
                } else {
                    Some(NotMeasured::NoWeights)
                };
                if let Some(why) = unmeasured {
                    progress(&format!("{what}: lay out"), 0, 1);
                    let base = static_variant(
                        &source,
                        graph,
                        precision,
                        recipe,
                        &name,
                        &arch,
                        &label,
                        sparsity,
                        params,
                        analysis.totals.macs,
                        why,
                    )?;
                    let tiled = tiled_variants(spec, &base, recipe, |budget| {
                        variant::layout_only(
                            &source,
                            graph,
                            precision,
                            CompileOptions {
                                scratch: false,
                                ram_budget: Some(budget),
                                ..CompileOptions::default()
                            },
                        )
                    })?;
                    out.push(base);
                    out.extend(tiled);
                    continue;
                }
                if precision == Precision::Int8 && calib.is_none() {
                    calib = Some(calibration(spec, model_path, recipe, &input_shape)?);
                }
                let mut cb = |d, t| progress(&format!("{what}: calibrate"), d, t);
                let ranges = variant::ranges(
                    &source,
                    graph,
                    precision,
                    calib.as_deref().unwrap_or_default(),
                    &mut cb,
                )?;
                let compile = |options| {
                    variant::compile(&source, graph, precision, ranges.as_deref(), options)
                };
                let host_plan = compile(CompileOptions::default())?;
                let mcu_plan = compile(CompileOptions {
                    scratch: false,
                    ..CompileOptions::default()
                })?;
                let plan_path = spec
                    .plans_dir
                    .join(format!("{name}-{}.efp", label.replace([' ', '%'], "")));
                // The microcontroller plan records the recipe: a later flash
                // and bench preprocess the same way.
                let mcu_bytes = edgefit_engine::writer::append_metadata(
                    &mcu_plan.bytes,
                    &recipe.to_plan_metadata(),
                )
                .map_err(|e| CompareError::Plan(e.to_string()))?;
                std::fs::write(&plan_path, &mcu_bytes).map_err(|e| {
                    CompareError::Plan(format!("write {}: {e}", plan_path.display()))
                })?;
                let mut cb = |d, t| progress(&format!("{what}: evaluate"), d, t);
                let data = EvalData {
                    source: spec.test,
                    recipe,
                    input_shape: &input_shape,
                    on_bad: OnBadImage::Fail,
                };
                let eval = variant::evaluate_plan(
                    &plan_path,
                    &host_plan.bytes,
                    what.clone(),
                    &data,
                    &mut cb,
                )?;
                let layers = layer_memory(&plan_path.display().to_string(), &mcu_bytes, &what)?;
                out.push(Variant {
                    model: name.clone(),
                    architecture: arch.clone(),
                    variant: label,
                    precision,
                    sparsity,
                    params,
                    macs: analysis.totals.macs,
                    plan_bytes: mcu_bytes.len() as u64,
                    arena_bytes: mcu_plan.summary.arena_bytes as u64,
                    scratch_bytes: host_plan.summary.scratch_bytes as u64,
                    accuracy: Ok(eval.accuracy),
                    images: eval.samples as u64,
                    host_latency_ms: Some(eval.latency.p50_us / 1000.0),
                    plan_crc32: Some(format!("{:08x}", edgefit_proto::crc32(&mcu_bytes))),
                    plan_path: Some(plan_path),
                    layers,
                    profiles: vec![],
                    tiling: None,
                });
                let tiled = tiled_variants(spec, &out[out.len() - 1], recipe, |budget| {
                    compile(CompileOptions {
                        scratch: false,
                        ram_budget: Some(budget),
                        ..CompileOptions::default()
                    })
                })?;
                out.extend(tiled);
            }
        }
    }
    Ok(out)
}

/// A model's input shape, as edgefit imports it.
fn model_input_shape(path: &Path) -> Result<Vec<usize>, CompareError> {
    let g = variant::import(path)?.graph;
    Ok(g.tensor(g.input).shape.clone())
}

/// The calibration samples, preprocessed for a model.
fn calibration(
    spec: &CompareSpec<'_>,
    model_path: &Path,
    recipe: &Recipe,
    input_shape: &[usize],
) -> Result<Vec<Vec<f32>>, CompareError> {
    let data = spec
        .calib
        .ok_or_else(|| CompareError::Plan("int8 variants need calibration data".into()))?;
    let (tensors, _) = data
        .tensors(0..data.len(), recipe, input_shape, OnBadImage::Fail)
        .map_err(|e| CompareError::Data {
            path: model_path.to_owned(),
            source: e,
        })?;
    Ok(tensors.into_iter().map(|(_, t, _)| t).collect())
}

/// Each op's output and weight bytes in a plan.
fn layer_memory(path: &str, plan: &[u8], model: &str) -> Result<Vec<LayerMemory>, CompareError> {
    let report = inspect_plan(path, plan).map_err(|e| CompareError::Plan(e.to_string()))?;
    Ok(report
        .ops
        .iter()
        .map(|op| LayerMemory {
            model: model.to_owned(),
            layer: op.op.clone(),
            index: op.index as u32,
            output_bytes: op.output_bytes as u64,
            weight_bytes: op.weight_bytes as u64,
        })
        .collect())
}

/// A variant whose accuracy cannot be measured, laid out by the compiler
/// for its sizes: the plan (with the recipe's metadata, as a real one) and
/// its arenas are exact; the plan itself is neither written nor run.
#[allow(clippy::too_many_arguments)]
fn static_variant(
    source: &Path,
    graph: &crate::ir::Graph,
    precision: Precision,
    recipe: &Recipe,
    name: &str,
    arch: &str,
    label: &str,
    sparsity: f64,
    params: u64,
    macs: u64,
    why: NotMeasured,
) -> Result<Variant, CompareError> {
    let layout = |scratch| {
        variant::layout_only(
            source,
            graph,
            precision,
            CompileOptions {
                scratch,
                ..CompileOptions::default()
            },
        )
    };
    let host_plan = layout(true)?;
    let mcu_plan = layout(false)?;
    let mcu_bytes =
        edgefit_engine::writer::append_metadata(&mcu_plan.bytes, &recipe.to_plan_metadata())
            .map_err(|e| CompareError::Plan(e.to_string()))?;
    let what = format!("{name} {label}");
    Ok(Variant {
        model: name.to_owned(),
        architecture: arch.to_owned(),
        variant: label.to_owned(),
        precision,
        sparsity,
        params,
        macs,
        plan_bytes: mcu_bytes.len() as u64,
        arena_bytes: mcu_plan.summary.arena_bytes as u64,
        scratch_bytes: host_plan.summary.scratch_bytes as u64,
        accuracy: Err(why),
        images: 0,
        host_latency_ms: None,
        plan_path: None,
        plan_crc32: None,
        layers: layer_memory(&what, &mcu_bytes, &what)?,
        profiles: vec![],
        tiling: None,
    })
}

/// A measurement from a real device (`edgefit bench` through `--port`).
#[derive(Debug, Clone)]
pub struct DeviceMeasurement {
    /// Variant label and model it belongs to.
    pub model: String,
    pub variant: String,
    pub profile: String,
    pub device: String,
    pub latency_ms: f64,
    /// Energy per inference from the device's sensor, if it has one.
    pub energy_mj: Option<f64>,
    pub sensor: Option<String>,
}

/// The profile's name for this host.
pub const THIS_MACHINE: &str = "this-machine";

/// One row per variant and profile.
pub fn rows(variants: &[Variant], profiles: &[Profile], devices: &[DeviceMeasurement]) -> Vec<Row> {
    let mut rows = Vec::new();
    for p in profiles {
        let linux = p.kind == "linux";
        for v in variants {
            if !v.profiles.is_empty() && !v.profiles.contains(&p.name) {
                continue;
            }
            let ram = v.arena_bytes + if linux { v.scratch_bytes } else { 0 } + ENGINE_STATE_BYTES;
            let fit = p.fits(v.plan_bytes, ram);
            let device = devices
                .iter()
                .find(|d| d.profile == p.name && d.model == v.model && d.variant == v.variant);
            let (latency_ms, latency_source) = match device {
                Some(d) => (Some(d.latency_ms), format!("measured on {}", d.device)),
                None if p.name == THIS_MACHINE && v.host_latency_ms.is_some() => {
                    (v.host_latency_ms, "measured on this host".to_owned())
                }
                // A profile's cycles per MAC describe its int8 kernels.
                None if v.precision == Precision::Int8 => (
                    Some(p.estimated_latency_s(v.macs) * 1e3),
                    format!(
                        "estimated ({} cycles/MAC at {} MHz)",
                        p.cycles_per_mac, p.clock_mhz
                    ),
                ),
                None => (
                    None,
                    "not measured (the profile's cycles/MAC are for int8 kernels)".to_owned(),
                ),
            };
            let typical = || {
                format!(
                    "estimated (the profile's typical active power, {} W)",
                    p.power.typical_active_w
                )
            };
            let (energy_mj, energy_source, watts, watts_source) =
                match device.and_then(|d| d.energy_mj.map(|e| (d, e))) {
                    Some((d, e)) => {
                        let sensor = format!("measured ({})", d.sensor.clone().unwrap_or_default());
                        (
                            Some(e),
                            sensor.clone(),
                            e / d.latency_ms.max(f64::MIN_POSITIVE),
                            sensor,
                        )
                    }
                    None => match latency_ms {
                        Some(l) => (
                            Some(p.estimated_energy_j(l / 1e3) * 1e3),
                            typical(),
                            p.power.typical_active_w,
                            typical(),
                        ),
                        None => (
                            None,
                            "not measured".to_owned(),
                            p.power.typical_active_w,
                            typical(),
                        ),
                    },
                };
            let accuracy = v.accuracy.ok();
            let accuracy_source = match v.accuracy {
                Ok(_) => format!("measured on {} test images", v.images),
                Err(why) => why.source().to_owned(),
            };
            let (accuracy_per_watt, accuracy_per_watt_source) = match accuracy {
                Some(a) => (Some(a / watts.max(f64::MIN_POSITIVE)), watts_source),
                None => (None, accuracy_source.clone()),
            };
            rows.push(Row {
                model: v.model.clone(),
                architecture: v.architecture.clone(),
                variant: v.variant.clone(),
                precision: precision_name(v.precision).to_owned(),
                sparsity: v.sparsity,
                params: v.params,
                macs: v.macs,
                plan_bytes: v.plan_bytes,
                arena_bytes: v.arena_bytes + if linux { v.scratch_bytes } else { 0 },
                peak_ram_bytes: ram,
                accuracy,
                accuracy_images: v.images,
                accuracy_source,
                latency_ms,
                latency_source,
                energy_mj,
                energy_source,
                accuracy_per_watt,
                accuracy_per_watt_source,
                profile: p.name.clone(),
                device: device.map(|d| d.device.clone()),
                fits_ram: fit.fits_ram(),
                ram_margin_bytes: fit.ram_margin,
                fits_flash: fit.fits_flash(),
                flash_margin_bytes: fit.flash_margin,
                ram_limit_bytes: p.arena_budget_bytes(),
                flash_limit_bytes: p.plan_limit_bytes(),
                plan_crc32: v.plan_crc32.clone(),
                tiling: v.tiling.as_ref().map(|t| RowTiling {
                    first_layer: t.first_layer.clone(),
                    last_layer: t.last_layer.clone(),
                    bands: t.bands,
                    rows_per_step: t.rows_per_step,
                    extra_macs_percent: t.extra_macs_percent,
                    untiled_arena_bytes: t.arena_untiled_bytes as u64,
                }),
            });
        }
    }
    rows
}

/// How the best variant is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Highest accuracy (ties: smaller plan).
    Accuracy,
    /// Lowest latency among variants within one point of the best accuracy.
    Latency,
    /// Lowest energy per inference, likewise.
    Energy,
}

impl Criterion {
    /// The criterion named `name` ("accuracy", "latency", "energy").
    pub fn from_name(name: &str) -> Option<Criterion> {
        [Criterion::Accuracy, Criterion::Latency, Criterion::Energy]
            .into_iter()
            .find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Criterion::Accuracy => "accuracy",
            Criterion::Latency => "latency",
            Criterion::Energy => "energy",
        }
    }
}

fn kb(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

/// The best fitting variant of one architecture on one profile.
/// Accuracies closer than this are a tie: a quarter point is about one
/// standard error at 92% on 10,000 test images.
pub const ACCURACY_TIE: f64 = 0.0025;

/// What ranks the candidates: smaller first, then the second value.
type RankKey = fn(&Row) -> (f64, f64);

/// How much a variant gives up for its size: f32 before f16 before int8,
/// dense before pruned (what ranks variants whose accuracy is unknown).
fn compression(r: &Row) -> (u8, u64) {
    let p = match r.precision.as_str() {
        "f32" => 0,
        "f16" => 1,
        _ => 2,
    };
    (p, (r.sparsity * 1e6) as u64)
}

fn best<'r>(rows: &[&'r Row], c: Criterion) -> Option<&'r Row> {
    let fitting: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.fits_ram && r.fits_flash)
        .collect();
    if fitting.iter().all(|r| r.accuracy.is_none()) {
        // Nothing measured (graph-only models, no data): the least
        // compressed variant that fits; by latency or energy, the fastest
        // or most frugal one. Smaller plans break ties.
        let key = |r: &Row| match c {
            Criterion::Accuracy => 0.0,
            Criterion::Latency => r.latency_ms.unwrap_or(f64::INFINITY),
            Criterion::Energy => r.energy_mj.unwrap_or(f64::INFINITY),
        };
        return fitting.into_iter().min_by(|a, b| {
            key(a)
                .total_cmp(&key(b))
                .then(compression(a).cmp(&compression(b)))
                .then(a.plan_bytes.cmp(&b.plan_bytes))
        });
    }
    let fitting: Vec<&Row> = fitting
        .into_iter()
        .filter(|r| r.accuracy.is_some())
        .collect();
    let acc = |r: &Row| r.accuracy.unwrap_or(f64::NAN);
    let top = fitting.iter().map(|r| acc(r)).fold(f64::NAN, f64::max);
    // Accuracy: among the variants tied with the best, the smallest plan.
    // Latency, energy: among those within a point of the best accuracy.
    let (window, key): (f64, RankKey) = match c {
        Criterion::Accuracy => (ACCURACY_TIE, |r| {
            (r.plan_bytes as f64, -r.accuracy.unwrap_or(0.0))
        }),
        Criterion::Latency => (0.01, |r| {
            (
                r.latency_ms.unwrap_or(f64::INFINITY),
                -r.accuracy.unwrap_or(0.0),
            )
        }),
        Criterion::Energy => (0.01, |r| {
            (
                r.energy_mj.unwrap_or(f64::INFINITY),
                -r.accuracy.unwrap_or(0.0),
            )
        }),
    };
    fitting
        .into_iter()
        .filter(|r| acc(r) >= top - window)
        .min_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
}

/// Per profile (by name): the best variant of each architecture and one
/// sentence.
pub fn verdicts(rows: &[Row], profiles: &[String], c: Criterion) -> Vec<Verdict> {
    let mut archs: Vec<&str> = rows.iter().map(|r| r.architecture.as_str()).collect();
    archs.sort_unstable();
    archs.dedup();
    profiles
        .iter()
        .map(|p| {
            let on: Vec<&Row> = rows.iter().filter(|r| &r.profile == p).collect();
            let bests: Vec<(&str, Option<&Row>)> = archs
                .iter()
                .map(|a| {
                    let of: Vec<&Row> = on.iter().copied().filter(|r| r.architecture == *a).collect();
                    (*a, best(&of, c))
                })
                .collect();
            // The matrix shows each choice's figures: the sentence names it
            // and says why it wins.
            let describe = |r: &Row| format!("{} {}", r.model, r.variant);
            let figure = |r: &Row| match c {
                Criterion::Accuracy => r
                    .accuracy
                    .map_or_else(|| "accuracy not measured".to_owned(), |a| format!("{:.1}%", 100.0 * a)),
                Criterion::Latency => r.latency_ms.map_or_else(
                    || "no latency".to_owned(),
                    |l| {
                        let est = Source::of(&r.latency_source, r.latency_ms) == Source::Estimated;
                        format!("{l:.2} ms{}", if est { " (estimated)" } else { "" })
                    },
                ),
                Criterion::Energy => r.energy_mj.map_or_else(
                    || "no energy".to_owned(),
                    |e| {
                        let est = Source::of(&r.energy_source, r.energy_mj) == Source::Estimated;
                        format!("{e:.3} mJ{}", if est { " (estimated)" } else { "" })
                    },
                ),
            };
            let fitting: Vec<&(&str, Option<&Row>)> = bests.iter().filter(|(_, b)| b.is_some()).collect();
            let (sentence, winner) = match fitting.as_slice() {
                [] => {
                    let smallest = on.iter().min_by_key(|r| {
                        (-r.ram_margin_bytes.min(0)) + (-r.flash_margin_bytes.min(0))
                    });
                    let sentence = match smallest {
                        Some(r) => format!(
                            "On {}, nothing fits: the closest, {} {}, needs {} more RAM and {} more flash.",
                            p,
                            r.model,
                            r.variant,
                            kb((-r.ram_margin_bytes).max(0) as u64),
                            kb((-r.flash_margin_bytes).max(0) as u64)
                        ),
                        None => format!("On {}, no variant was compared.", p),
                    };
                    (sentence, None)
                }
                [(a, Some(r))] => {
                    let others: Vec<&str> = archs.iter().filter(|x| *x != a).copied().collect();
                    if others.is_empty() {
                        // One architecture compared: nothing to set it against.
                        (format!("On {}, the best {a} is {}.", p, describe(r)), None)
                    } else {
                        (
                            format!(
                                "On {}, only {a} fits ({}); no {} variant does.",
                                p,
                                describe(r),
                                others.join(" or ")
                            ),
                            Some((*a).to_owned()),
                        )
                    }
                }
                _ => {
                    let mut ranked: Vec<(&str, &Row)> =
                        fitting.iter().filter_map(|(a, r)| r.map(|r| (*a, r))).collect();
                    ranked.sort_by(|x, y| {
                        let k = |r: &Row| match c {
                            Criterion::Accuracy => -r.accuracy.unwrap_or(f64::NEG_INFINITY),
                            Criterion::Latency => r.latency_ms.unwrap_or(f64::INFINITY),
                            Criterion::Energy => r.energy_mj.unwrap_or(f64::INFINITY),
                        };
                        k(x.1).total_cmp(&k(y.1))
                    });
                    let (wa, wr) = ranked[0];
                    let others: Vec<String> = ranked[1..]
                        .iter()
                        .map(|(_, r)| format!("{} at {}", describe(r), figure(r)))
                        .collect();
                    let unmeasured = c == Criterion::Accuracy
                        && ranked.iter().any(|(_, r)| r.accuracy.is_none());
                    let tied = c == Criterion::Accuracy
                        && ranked.iter().all(|(_, r)| match (wr.accuracy, r.accuracy) {
                            (Some(w), Some(a)) => w - a <= ACCURACY_TIE,
                            _ => false,
                        });
                    if unmeasured {
                        // Without accuracy there is no winner on it (the
                        // matrix shows what fits).
                        (
                            format!(
                                "On {}, each architecture fits but accuracy is not measured for all of them, so no winner.",
                                p
                            ),
                            None,
                        )
                    } else if tied {
                        // Level on accuracy: the smaller plan is the answer.
                        let (sa, sr) = ranked
                            .iter()
                            .min_by_key(|(_, r)| r.plan_bytes)
                            .copied()
                            .unwrap_or((wa, wr));
                        let rest: Vec<String> = ranked
                            .iter()
                            .filter(|(a, _)| *a != sa)
                            .map(|(_, r)| format!("{} for {}", kb(r.plan_bytes), describe(r)))
                            .collect();
                        (
                            format!(
                                "On {}, the architectures are level on accuracy (within {:.2} points), so {sa} wins on size: {} for {} against {}.",
                                p,
                                100.0 * ACCURACY_TIE,
                                kb(sr.plan_bytes),
                                describe(sr),
                                rest.join(", ")
                            ),
                            Some(sa.to_owned()),
                        )
                    } else {
                        (
                            format!(
                                "On {}, {wa} wins on {}: {} at {} against {}.",
                                p,
                                c.name(),
                                describe(wr),
                                figure(wr),
                                others.join(", ")
                            ),
                            Some(wa.to_owned()),
                        )
                    }
                }
            };
            Verdict {
                profile: p.clone(),
                best: bests
                    .iter()
                    .filter_map(|(a, r)| {
                        r.map(|r| BestVariant {
                            architecture: (*a).to_owned(),
                            model: r.model.clone(),
                            variant: r.variant.clone(),
                            why: match c {
                                _ if r.accuracy.is_none() => format!(
                                    "accuracy {}: the least compressed variant that fits{}",
                                    r.accuracy_source,
                                    if c == Criterion::Accuracy {
                                        String::new()
                                    } else {
                                        format!(", by {}", c.name())
                                    }
                                ),
                                Criterion::Accuracy => format!(
                                    "smallest plan within {:.2} accuracy points of the best variant that fits",
                                    100.0 * ACCURACY_TIE
                                ),
                                _ => format!(
                                    "lowest {} within a point of the best accuracy among the variants that fit",
                                    c.name()
                                ),
                            },
                        })
                    })
                    .collect(),
                sentence,
                winner,
            }
        })
        .collect()
}

/// The whole result set.
pub fn results(
    created: String,
    host: String,
    c: Criterion,
    rows: Vec<Row>,
    profiles: &[Profile],
    variants: &[Variant],
) -> Results {
    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    let verdicts = verdicts(&rows, &names, c);
    let mut layers = Vec::new();
    for v in variants {
        if v.sparsity == 0.0 && v.precision == Precision::Int8 {
            layers.extend(v.layers.iter().cloned());
        }
    }
    Results {
        schema: RESULTS_SCHEMA.to_owned(),
        created,
        host,
        criterion: c.name().to_owned(),
        rows,
        verdicts,
        layers,
        seed: Vec::new(),
        family: Vec::new(),
    }
}

/// Writes `results.json`, `results.csv`, the plots (SVG and PNG) and a
/// self-contained `report.html` into `dir`; returns the files written.
pub fn write_report(r: &Results, dir: &Path) -> Result<Vec<PathBuf>, CompareError> {
    let io = |what: &Path, e: std::io::Error| {
        CompareError::Plan(format!("write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = Vec::new();
    let json = dir.join("results.json");
    let text = serde_json::to_string_pretty(r).map_err(|e| CompareError::Plan(e.to_string()))?;
    std::fs::write(&json, text).map_err(|e| io(&json, e))?;
    written.push(json);
    let csv = dir.join("results.csv");
    std::fs::write(&csv, edgefit_report::render_csv(r)).map_err(|e| io(&csv, e))?;
    written.push(csv);
    let plots =
        edgefit_report::render_plots(r, dir).map_err(|e| CompareError::Plan(e.to_string()))?;
    let mut svgs = Vec::new();
    for p in &plots {
        if p.extension().is_some_and(|e| e == "svg") {
            let text = std::fs::read_to_string(p).map_err(|e| io(p, e))?;
            svgs.push((stem(p).replace(['-', '_'], " "), text));
        }
    }
    written.extend(plots);
    let html = dir.join("report.html");
    std::fs::write(&html, edgefit_report::render_html(r, &svgs)).map_err(|e| io(&html, e))?;
    written.push(html);
    Ok(written)
}

/// Merges one `edgefit bench` report (schema `edgefit.bench.v1`, as JSON)
/// into `r`: the rows of the variant whose plan has the benched plan's CRC
/// get, on the profile named after the device's board, the latency the
/// device measured (and its energy if it has a sensor; else the profile's
/// typical power times that latency, estimated). Returns how many rows
/// changed; an error when no row has that plan or no profile that board.
pub fn merge_bench(r: &mut Results, bench: &BenchReport) -> Result<usize, CompareError> {
    let bad = |what: &str| CompareError::Plan(format!("bench report: {what}"));
    let crc = bench.plan.crc32.as_str();
    let board = bench.device.board.as_str();
    let p50_us = bench.latency.us.p50_us;
    let timing = bench.latency.source.as_str();
    let energy_mj = bench.energy_uj_per_inference.value.map(|uj| uj / 1000.0);
    let sensor = bench.energy_uj_per_inference.source.as_str();
    let latency_ms = p50_us / 1000.0;
    let mut changed = 0;
    let mut known_plan = false;
    for row in r.rows.iter_mut() {
        if row.plan_crc32.as_deref() != Some(crc) {
            continue;
        }
        known_plan = true;
        if !row.profile.contains(board) || row.device.is_some() {
            continue;
        }
        // The profile's typical power, from the estimate the row carries.
        let watts = match (row.energy_mj, row.latency_ms) {
            (Some(e), Some(l))
                if l > 0.0
                    && !matches!(
                        Source::of(&row.energy_source, row.energy_mj),
                        Source::Measured | Source::Host
                    ) =>
            {
                Some(e / l)
            }
            _ => None,
        };
        row.latency_ms = Some(latency_ms);
        row.latency_source = format!("measured on {board} ({timing})");
        row.device = Some(board.to_owned());
        match (energy_mj, watts) {
            (Some(e), _) => {
                row.energy_mj = Some(e);
                row.energy_source = format!("measured ({sensor})");
                row.accuracy_per_watt = row
                    .accuracy
                    .map(|a| a / (e / latency_ms).max(f64::MIN_POSITIVE));
                row.accuracy_per_watt_source = row.energy_source.clone();
            }
            (None, Some(w)) => {
                row.energy_mj = Some(w * latency_ms);
                row.energy_source =
                    format!("estimated (the profile's typical active power, {w:.3} W)");
            }
            (None, None) => {}
        }
        changed += 1;
    }
    if !known_plan {
        return Err(bad(&format!(
            "no compared variant has plan CRC {crc}: run edgefit compare on the models first"
        )));
    }
    if changed == 0 {
        return Err(bad(&format!(
            "plan {crc} is compared, but no profile name contains the board `{board}` (or it was merged already)"
        )));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: &str, precision: &str, plan: u64, fits: bool, accuracy: Option<f64>) -> Row {
        Row {
            model: "m".into(),
            architecture: "VGG".into(),
            variant: variant.into(),
            precision: precision.into(),
            sparsity: if variant.contains("LAMP") { 0.5 } else { 0.0 },
            params: 1,
            macs: 1,
            plan_bytes: plan,
            arena_bytes: 1,
            peak_ram_bytes: 1,
            accuracy,
            accuracy_images: 0,
            accuracy_source: String::new(),
            latency_ms: None,
            latency_source: String::new(),
            energy_mj: None,
            energy_source: String::new(),
            accuracy_per_watt: None,
            accuracy_per_watt_source: String::new(),
            profile: "p".into(),
            device: None,
            fits_ram: fits,
            ram_margin_bytes: 0,
            fits_flash: true,
            flash_margin_bytes: 0,
            ram_limit_bytes: 1,
            flash_limit_bytes: 1,
            plan_crc32: None,
            tiling: None,
        }
    }

    /// Two boards, hand-checked: on the small one only the ResNet fits (the
    /// VGG needs 24 KiB more RAM); on the big one both fit and the VGG's
    /// 2 points more accuracy win; a third board like the big one repeats
    /// its verdict, so the matrix gives it no sentence.
    #[test]
    fn the_matrix_picks_the_hand_checked_cells() {
        let mut rows = Vec::new();
        for (profile, ram) in [("small", 64 * 1024u64), ("big", 1 << 20), ("big2", 1 << 20)] {
            for (arch, model, peak, acc) in [
                ("VGG", "vgg", 88 * 1024u64, 0.93),
                ("ResNet", "resnet", 40 * 1024, 0.91),
            ] {
                let mut r = row("int8", "int8", 100_000, peak <= ram, Some(acc));
                r.profile = profile.into();
                r.architecture = arch.into();
                r.model = model.into();
                r.peak_ram_bytes = peak;
                r.ram_margin_bytes = ram as i64 - peak as i64;
                rows.push(r);
            }
        }
        let profiles: Vec<String> = ["small", "big", "big2"].map(String::from).to_vec();
        let verdicts = verdicts(&rows, &profiles, Criterion::Accuracy);
        assert_eq!(verdicts[0].winner.as_deref(), Some("ResNet"));
        assert_eq!(verdicts[1].winner.as_deref(), Some("VGG"));
        let results = Results {
            schema: RESULTS_SCHEMA.into(),
            created: String::new(),
            host: String::new(),
            criterion: "accuracy".into(),
            rows,
            verdicts,
            layers: Vec::new(),
            seed: Vec::new(),
            family: Vec::new(),
        };
        let m = edgefit_report::verdict_matrix(&results);
        assert_eq!(m.architectures, ["ResNet", "VGG"]);
        let cells: Vec<Vec<String>> = m
            .rows
            .iter()
            .map(|r| r.cells.iter().map(|c| c.text()).collect())
            .collect();
        assert_eq!(cells[0][1], "none fits: needs 24.0 KiB more RAM");
        assert!(cells[0][0].starts_with("resnet int8") && cells[0][0].ends_with('★'));
        assert!(
            cells[1][1].starts_with("vgg int8") && cells[1][1].ends_with("93.00% ★"),
            "{cells:?}"
        );
        assert!(!cells[1][0].ends_with('★'));
        let sentences: Vec<bool> = m.rows.iter().map(|r| r.sentence.is_some()).collect();
        assert_eq!(sentences, [true, true, false]);
    }

    #[test]
    fn without_accuracy_the_least_compressed_fitting_variant_is_best() {
        let rows = [
            row("f32", "f32", 400, false, None),
            row("int8", "int8", 100, true, None),
            row("f16", "f16", 200, true, None),
            row("int8 LAMP 50%", "int8", 60, true, None),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(best(&refs, Criterion::Accuracy).unwrap().variant, "f16");
        // With measured accuracy, the measured rows decide as before.
        let rows = [
            row("f16", "f16", 200, true, Some(0.90)),
            row("int8", "int8", 100, true, Some(0.899)),
            row("f32", "f32", 400, true, None),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(best(&refs, Criterion::Accuracy).unwrap().variant, "int8");
    }
}

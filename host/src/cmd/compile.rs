use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use edgefit::compile::{compile_with, CompileOptions};
use edgefit::data::{OnBadImage, Recipe, Role};
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::quant::calibrate::CalibrationMethod;
use edgefit::quant::{calibrate_graph, input_elements, synthetic_samples};
use edgefit::table::bytes;
use edgefit_artifact::{encode_tract_artifact, TractPrecision};
use edgefit_engine::writer::append_metadata;
use edgefit_engine::Precision;

use super::data_args::{check_bundled, open_source, RecipeArgs};
use super::progress;

#[derive(Clone, Copy, ValueEnum)]
pub enum PrecisionArg {
    Int8,
    F16,
    F32,
}

impl PrecisionArg {
    pub fn precision(self) -> Precision {
        match self {
            PrecisionArg::Int8 => Precision::Int8,
            PrecisionArg::F16 => Precision::F16,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// What the variant is compiled for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// An edgefit plan for the native engine (microcontrollers, the Linux agent)
    Plan,
    /// A tract model artifact (f32 or f16) for the Linux agent's tract-cpu / tract-cuda engines
    Tract,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Minmax,
    Percentile,
    Entropy,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit compile models/resnet-fmnist.onnx --precision int8 -o resnet-int8.efp\n  edgefit compile mynet.onnx --calib val/ --preprocess imagenet --no-scratch -o mynet-mcu.efp --json\n  edgefit compile models/mlperf/resnet8.onnx --calib synthetic --no-scratch --ram-budget 16KiB -o r8-16k.efp   # tiled\n  edgefit compile models/vgg-fmnist.onnx --device-profile nrf52840-dk -o vgg-nrf.efp   # budget: the board's RAM less the firmware's\n  edgefit compile mynet.onnx --target tract --precision f16 -o mynet-f16.tract    # for the Linux agent"
)]
pub struct CompileCmd {
    /// ONNX model to compile
    model: PathBuf,
    /// Weight and activation precision of the plan
    #[arg(long, value_enum, default_value = "int8")]
    precision: PrecisionArg,
    /// Calibration samples, in any format `--data` takes (IDX: the calib-* or train-*
    /// files; CIFAR: data_batch_1.bin; an image folder; NumPy), never the test images
    /// (default: the bundled subset of the Fashion-MNIST training split); or
    /// `synthetic` for seeded random inputs (plans then only serve size, memory and
    /// speed work)
    #[arg(long, value_name = "PATH|synthetic")]
    calib: Option<String>,
    /// Calibration samples to use (the first N, or a seeded subset with --shuffle-seed)
    #[arg(long, default_value_t = 500)]
    calib_samples: usize,
    /// Shuffle the calibration samples with this seed before taking --calib-samples
    #[arg(long, value_name = "S")]
    shuffle_seed: Option<u64>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// How activation ranges are chosen from the calibration run
    #[arg(long, value_enum, default_value = "minmax")]
    calib_method: MethodArg,
    /// Override the input shape, e.g. 1,3,224,224
    #[arg(long, value_name = "N,C,H,W", value_delimiter = ',', num_args = 1)]
    input_shape: Option<Vec<usize>>,
    /// Keep residual additions as separate ops (by default each is fused into the
    /// conv that writes over the skip tensor: two live activations per block, not three)
    #[arg(long)]
    no_fuse: bool,
    /// No scratch memory for the fast kernels: the smallest RAM (for
    /// microcontrollers), identical results, slower on the host
    #[arg(long)]
    no_scratch: bool,
    /// Store every weight tensor dense, even where a bitmap-sparse encoding of
    /// a pruned layer would be smaller (the results are the same bytes)
    #[arg(long)]
    dense_weights: bool,
    /// The most RAM the plan's arena (activations and scratch) may take, in
    /// bytes or with a KiB/MiB suffix (16KiB): over it, the leading layers run in
    /// bands of rows (a tiled segment, plan format version 2; the same results,
    /// no recomputed rows); a plan that cannot fit is refused with the smallest
    /// arena tiling reaches
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, conflicts_with = "device_profile")]
    ram_budget: Option<usize>,
    /// Budget the arena for this device profile, by name: its RAM less what the
    /// firmware keeps (`edgefit devices`; implies --no-scratch on a microcontroller)
    #[arg(long, value_name = "NAME")]
    device_profile: Option<String>,
    /// Extra profile files (TOML), used in addition to the built-in ones
    #[arg(long = "profile", value_name = "FILE")]
    profile_files: Vec<PathBuf>,
    /// What to compile for: a plan (.efp) or a tract model artifact (.eftm)
    #[arg(long, value_enum, default_value = "plan")]
    target: TargetArg,
    /// Output file
    #[arg(
        short = 'o',
        long = "out",
        alias = "output",
        value_name = "VARIANT.efp"
    )]
    output: PathBuf,
    /// Print the summary as JSON (schema edgefit.compile.v1) instead of text
    #[arg(long)]
    json: bool,
}

/// A byte count: digits, optionally with a `KiB`/`K` or `MiB`/`M` suffix.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count (e.g. 16384, 16KiB, 1MiB)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        _ => return Err(format!("`{s}`: unknown unit (B, KiB or MiB)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// FNV-1a: a stable plan id from the model bytes and `recipe`, everything
/// else that shapes the plan (precision, calibration data, samples and
/// method, compile options), so two different plans of one model do not
/// share an id.
fn plan_id(model: &[u8], recipe: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in model.iter().chain(recipe.as_bytes()) {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h
}

impl CompileCmd {
    /// The RAM budget (`--ram-budget`, or `--device-profile`'s RAM less the
    /// firmware's), and whether it is a microcontroller's (no scratch).
    fn budget(&self) -> anyhow::Result<(Option<usize>, bool)> {
        let Some(name) = &self.device_profile else {
            return Ok((self.ram_budget, false));
        };
        let all =
            edgefit::profiles::load_profiles(&self.profile_files).context("device profiles")?;
        let p = edgefit_profiles::find_profile(&all, name)?;
        let budget = p
            .arena_budget_bytes()
            .saturating_sub(edgefit::compare::ENGINE_STATE_BYTES);
        Ok((Some(budget as usize), p.kind == edgefit_profiles::Kind::Mcu))
    }

    /// Wraps the ONNX model for the agent's tract engines.
    fn tract_artifact(&self, input_shape: Vec<usize>) -> anyhow::Result<()> {
        let precision = match self.precision {
            PrecisionArg::F32 => TractPrecision::F32,
            PrecisionArg::F16 => TractPrecision::F16,
            PrecisionArg::Int8 => bail!(
                "--target tract takes --precision f32 or f16 (tract runs int8 QDQ models in \
                 float); int8 variants are plans for the native engine"
            ),
        };
        let source =
            std::fs::read(&self.model).with_context(|| format!("read {}", self.model.display()))?;
        // Check here that tract loads it, not on the device.
        edgefit::reference::TractReference::from_onnx_bytes(&source, &self.model, &input_shape)
            .context("tract cannot run this model")?;
        let artifact = encode_tract_artifact(&source, precision, &input_shape)
            .with_context(|| format!("wrap {}", self.model.display()))?;
        std::fs::write(&self.output, &artifact)
            .with_context(|| format!("write {}", self.output.display()))?;
        if self.json {
            let v = serde_json::json!({
                "schema": "edgefit.compile.v1",
                "path": self.output,
                "target": "tract",
                "precision": precision.name(),
                "bytes": artifact.len(),
                "input_shape": input_shape,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        println!(
            "wrote {}: tract {} artifact, {} (ONNX model + {} B header), input {:?} f32",
            self.output.display(),
            precision.name(),
            bytes(artifact.len()),
            edgefit_artifact::artifact::TRACT_HEADER,
            input_shape
        );
        Ok(())
    }

    pub fn run(self) -> anyhow::Result<()> {
        let model = import_onnx(
            &self.model,
            &ImportOptions {
                input_shape: self.input_shape.clone(),
            },
        )
        .with_context(|| format!("compile {}", self.model.display()))?;
        let graph = &model.graph;
        // Before calibration data or tract: one refusal for every precision and target.
        graph
            .require_weight_values()
            .with_context(|| format!("compile {}", self.model.display()))?;
        let precision = self.precision.precision();
        let input_shape = &graph.tensor(graph.input).shape;
        input_elements(input_shape).with_context(|| format!("compile {}", self.model.display()))?;
        if self.calib_samples == 0 {
            bail!("--calib-samples must be at least 1");
        }
        if self.target == TargetArg::Tract {
            return self.tract_artifact(graph.tensor(graph.input).shape.clone());
        }
        // What shapes the plan besides the model, for its id.
        let (ram_budget, mcu) = self.budget()?;
        let mut recipe = format!(
            "precision={};fuse={};scratch={};sparse={};shape={:?}",
            precision as u8,
            !self.no_fuse,
            !self.no_scratch && !mcu,
            !self.dense_weights,
            input_shape
        );
        if let Some(b) = ram_budget {
            recipe.push_str(&format!(";ram_budget={b}"));
        }
        // The recipe the plan records: the one calibration used, or the flags given.
        let mut recorded: Option<Recipe> = None;
        let ranges = if precision == Precision::Int8 {
            let shape = graph.tensor(graph.input).shape.clone();
            let (samples, what, pre) = match self.calib.as_deref() {
                Some("synthetic") => (
                    synthetic_samples(&shape, self.calib_samples, 0x5EED)
                        .context("synthetic calibration")?,
                    "synthetic (seeded random)".to_owned(),
                    "none".to_owned(),
                ),
                path => {
                    check_bundled(path.map(Path::new), &shape, "--calib")?;
                    let recipe = self.recipe.recipe(&shape).with_context(|| {
                        format!("calibration data for {}", self.model.display())
                    })?;
                    let source = open_source(
                        path.map(Path::new),
                        Role::Calibration,
                        Some(self.calib_samples),
                        self.shuffle_seed,
                        None,
                    )
                    .context("calibration data")?;
                    let (tensors, _) = source
                        .tensors(0..source.len(), &recipe, &shape, OnBadImage::Fail)
                        .context("calibration data")?;
                    let samples: Vec<Vec<f32>> = tensors.into_iter().map(|(_, t, _)| t).collect();
                    let pre = if source.is_tensors() {
                        "none (float tensors)".to_owned()
                    } else {
                        recorded = Some(recipe.clone());
                        recipe.describe()
                    };
                    (
                        samples,
                        format!(
                            "{} samples from {} ({}), preprocessed: {pre}",
                            source.len(),
                            source.path().display(),
                            source.format(),
                        ),
                        pre,
                    )
                }
            };
            let method = match self.calib_method {
                MethodArg::Minmax => CalibrationMethod::MinMax,
                MethodArg::Percentile => CalibrationMethod::Percentile(99.999),
                MethodArg::Entropy => CalibrationMethod::Entropy,
            };
            eprintln!("calibrating with {what}, method {}", method.name());
            // Not the data folder's path: the id must not depend on where the
            // repository lies.
            let source = if self.calib.as_deref() == Some("synthetic") {
                "synthetic"
            } else {
                "images"
            };
            recipe.push_str(&format!(
                ";calib={source}:{};pre={pre};seed={:?};method={}",
                samples.len(),
                self.shuffle_seed,
                method.name()
            ));
            let bar = progress::bar("calibrate");
            let ranges = calibrate_graph(
                &self.model,
                graph,
                &samples,
                method,
                &mut progress::callback(&bar),
            )
            .context("calibration")?;
            bar.finish_and_clear();
            Some(ranges)
        } else {
            None
        };
        if recorded.is_none() && self.recipe.given() {
            let r = self.recipe.recipe(input_shape)?;
            recipe.push_str(&format!(";pre={}", r.describe()));
            recorded = Some(r);
        }
        let source =
            std::fs::read(&self.model).with_context(|| format!("read {}", self.model.display()))?;
        let options = CompileOptions {
            fuse_residuals: !self.no_fuse,
            scratch: !self.no_scratch && !mcu,
            sparse_weights: !self.dense_weights,
            ram_budget,
        };
        let plan = compile_with(
            graph,
            precision,
            ranges.as_deref(),
            plan_id(&source, &recipe),
            options,
        )
        .with_context(|| format!("compile {}", self.model.display()))?;
        // The recipe travels in the plan: evaluate, bench and the devices' hosts
        // preprocess with it, no flags needed.
        // A tiled plan records the arena it replaced, for `inspect`.
        let mut metadata = recorded
            .as_ref()
            .map(|r| r.to_plan_metadata())
            .unwrap_or_default();
        if let Some(t) = &plan.summary.tiling {
            metadata.extend(
                edgefit::inspect_plan::tiling_metadata_toml(
                    t.arena_untiled_bytes + plan.summary.scratch_bytes,
                    t.budget_bytes,
                )
                .bytes(),
            );
        }
        let out = if metadata.is_empty() {
            plan.bytes.clone()
        } else {
            append_metadata(&plan.bytes, &metadata)
                .map_err(|e| anyhow::anyhow!("record the recipe in the plan: {e}"))?
        };
        std::fs::write(&self.output, &out)
            .with_context(|| format!("write {}", self.output.display()))?;
        let s = &plan.summary;
        if self.json {
            let v = serde_json::json!({
                "schema": "edgefit.compile.v1",
                "path": self.output,
                "target": "plan",
                "precision": s.precision,
                "plan_id": format!("{:08x}", edgefit_engine::Plan::parse(&out).map(|p| p.plan_id()).unwrap_or(0)),
                "bytes": out.len(),
                "weight_bytes": s.weight_bytes,
                "arena_bytes": s.arena_bytes,
                "arena_lower_bound_bytes": s.arena_lower_bound_bytes,
                "scratch_bytes": s.scratch_bytes,
                "ops": s.ops,
                "sparse_weight_tensors": s.sparse_tensors,
                "weight_tensors": s.weight_tensors,
                "notes": s.notes,
                "ram_budget_bytes": ram_budget,
                "tiling": s.tiling,
                "preprocess": recorded.as_ref().map(|r| r.describe()),
                "calibration": if self.calib.as_deref() == Some("synthetic") { Some("synthetic") } else { None },
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        println!(
            "wrote {}: {} plan, {} ({} weights), arena {} (lower bound {}) + scratch {}, {} ops",
            self.output.display(),
            s.precision,
            bytes(out.len()),
            bytes(s.weight_bytes),
            bytes(s.arena_bytes),
            bytes(s.arena_lower_bound_bytes),
            bytes(s.scratch_bytes),
            s.ops
        );
        if s.sparse_tensors > 0 {
            println!(
                "{} of {} weight tensors stored sparse (bitmap + non-zero values; --dense-weights to keep them dense)",
                s.sparse_tensors, s.weight_tensors
            );
        }
        for note in &s.notes {
            println!("note: {note}");
        }
        match (&s.tiling, ram_budget) {
            (Some(t), _) => {
                println!(
                    "tiled: layers `{}` to `{}` ({} ops) run in {} bands of {} row{} ({} kernel calls): arena {} against {} layer by layer (lower bound {} against {}), budget {}; {:+} MACs ({:+.2}%: each row is computed once, the halo rows kept in row buffers){}",
                    t.first_layer,
                    t.last_layer,
                    t.ops,
                    t.bands,
                    t.rows_per_step,
                    if t.rows_per_step == 1 { "" } else { "s" },
                    t.kernel_calls,
                    bytes(t.arena_bytes + s.scratch_bytes),
                    bytes(t.arena_untiled_bytes + s.scratch_bytes),
                    bytes(t.lower_bound_bytes),
                    bytes(t.lower_bound_untiled_bytes),
                    bytes(t.budget_bytes),
                    t.extra_macs,
                    t.extra_macs_percent,
                    if t.input_in_output {
                        "; the input shares the segment output's buffer"
                    } else {
                        ""
                    }
                );
                let buffers: Vec<String> = t
                    .row_buffers
                    .iter()
                    .map(|b| {
                        format!(
                            "{} {} of {} rows, halo {} ({})",
                            b.layer,
                            b.rows,
                            b.height,
                            b.halo_rows,
                            bytes(b.bytes)
                        )
                    })
                    .collect();
                println!("row buffers: {}", buffers.join(", "));
            }
            (None, Some(b)) => {
                println!("fits the RAM budget {} layer by layer: not tiled", bytes(b))
            }
            (None, None) => {}
        }
        if let Some(r) = &recorded {
            println!("preprocessing recorded in the plan: {}", r.describe());
        }
        if self.calib.as_deref() == Some("synthetic") {
            println!("note: calibrated on synthetic inputs: for size, memory and speed only, not accuracy");
        }
        Ok(())
    }
}

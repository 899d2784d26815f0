use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use edgefit::compare::{
    measure_variants, results, rows, write_report, CompareSpec, Criterion, DeviceMeasurement,
    Variant,
};
use edgefit::data::{bundled_data_dir, OnBadImage, Role};
use edgefit::device::bench::{artifact_input, bench, BenchOptions};
use edgefit::device::flash::flash_plan;
use edgefit::evaluate::EvalData;
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::profiles::load_profiles;
use edgefit_engine::Precision;

use super::compile::PrecisionArg;
use super::data_args::{check_bundled, open_source, RecipeArgs};
use super::device::PortArgs;
use super::progress;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FamilyArg {
    Vgg,
    Resnet,
}

#[derive(Clone, Copy, ValueEnum)]
enum CriterionArg {
    Accuracy,
    Latency,
    Energy,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit compare                                         # the bundled VGG and ResNet, every profile\n  edgefit compare vgg.onnx resnet.onnx --data val/ --preprocess imagenet --precision int8,f32 -o out\n  edgefit compare models/imagenet/vgg16.onnx models/imagenet/resnet50.onnx --precision int8   # graph-only: sizes, memory, fit\n  edgefit compare --family vgg,resnet --widths 0.125,0.25,0.5,1 --classes 10   # which VGG / ResNet each board holds\n  edgefit compare --port tcp:127.0.0.1:4545 --profiles qemu-mps2-an386 --precision int8 --json"
)]
#[command(mut_arg("port", |a| a.required(false)))]
pub struct CompareCmd {
    /// ONNX models to compare (default: the bundled vgg-fmnist and resnet-fmnist)
    #[arg(value_name = "MODEL.onnx")]
    models: Vec<PathBuf>,
    /// Device profiles to judge against, by name (default: all; `edgefit devices` lists them)
    #[arg(long, value_delimiter = ',')]
    profiles: Vec<String>,
    /// Extra profile files (TOML), used in addition to the built-in ones
    #[arg(long = "profile", value_name = "FILE")]
    profile_files: Vec<PathBuf>,
    /// Precisions of the compiled variants
    #[arg(long = "precision", alias = "precisions", value_enum, value_delimiter = ',', default_values = ["int8", "f16", "f32"])]
    precisions: Vec<PrecisionArg>,
    /// Magnitude sparsities (LAMP scope, bias-corrected where calibration data suit
    /// the model) of the variants; 0 = not pruned
    #[arg(long, value_delimiter = ',', default_value = "0,0.5")]
    sparsity: Vec<f64>,
    /// Structured channel-pruning fractions (layer scope, bias-corrected likewise): the
    /// only pruning that lowers RAM and latency on a microcontroller, and without
    /// retraining the costliest in accuracy (docs/benchmarks.md); 0 = none
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    prune_channels: Vec<f64>,
    /// A device to measure on (flash and bench each variant that fits it)
    #[command(flatten)]
    port: PortArgs,
    /// The profile of the device on --port (default: the profile whose name contains the device's board name)
    #[arg(long, value_name = "NAME")]
    device_profile: Option<String>,
    /// Test images benchmarked on the device per variant
    #[arg(long, default_value_t = 100, value_parser = super::count_at_least_one)]
    device_limit: usize,
    /// Test samples, in any format `evaluate --data` takes (default: the bundled
    /// Fashion-MNIST test split)
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Evaluate only the first N test samples (default: all)
    #[arg(long, value_parser = super::count_at_least_one)]
    limit: Option<usize>,
    /// Calibration samples for the int8 variants, in any format (default: the bundled
    /// Fashion-MNIST calibration subset); never the test split
    #[arg(long, value_name = "PATH")]
    calib: Option<PathBuf>,
    /// Calibration samples to use
    #[arg(long, default_value_t = 200, value_parser = super::count_at_least_one)]
    calib_samples: usize,
    /// Preprocessing for every model (a MODEL.preprocess.toml next to a model overrides it for that model)
    #[command(flatten)]
    recipe: RecipeArgs,
    /// How the best variant of each architecture is chosen on each profile
    #[arg(long, value_enum, default_value = "accuracy")]
    criterion: CriterionArg,
    /// Folder for results.json, results.csv, the plots, report.html and the
    /// variants' microcontroller plans (plans/*.efp)
    #[arg(short = 'o', long, default_value = "edgefit-report")]
    out: PathBuf,
    /// Print the results (schema of results.json) as JSON instead of the table
    #[arg(long)]
    json: bool,
    /// Also generate these architecture families (torchvision's definitions, written as
    /// ONNX into OUT/family/) and say which of each every board can hold
    #[arg(long, value_enum, value_delimiter = ',')]
    family: Vec<FamilyArg>,
    /// Family depths (VGG 11, 13, 16, 19; ResNet 18, 34, 50, 101, 152; default: all of each family)
    #[arg(long, value_delimiter = ',', requires = "family")]
    depths: Vec<u32>,
    /// Family width multipliers
    #[arg(long, value_delimiter = ',', default_values = ["0.25", "0.5", "1"], requires = "family")]
    widths: Vec<f64>,
    /// Family input resolutions (multiples of 32)
    #[arg(long, value_delimiter = ',', default_values = ["32", "64", "96", "128", "224"], requires = "family")]
    resolutions: Vec<u32>,
    /// Family classifier outputs
    #[arg(long, default_value_t = 1000, requires = "family")]
    classes: u32,
}

/// A model's input shape, as edgefit imports it, and whether its weights
/// have values (not a graph-only export).
fn input_shape_of(model: &Path) -> anyhow::Result<(Vec<usize>, bool)> {
    let m = import_onnx(model, &ImportOptions::default())
        .with_context(|| format!("compare {}", model.display()))?;
    let shape = m.graph.tensor(m.graph.input).shape.clone();
    Ok((shape, m.graph.has_weight_values()))
}

fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn host_name() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{}, {cores} cores", edgefit::speed::cpu_name())
}

impl CompareCmd {
    pub fn run(self) -> anyhow::Result<()> {
        if let Some(bad) = self
            .sparsity
            .iter()
            .chain(&self.prune_channels)
            .find(|s| !(0.0..1.0).contains(*s))
        {
            bail!("sparsity {bad} is outside [0, 1)");
        }
        let all = load_profiles(&self.profile_files).context("device profiles")?;
        let profiles = if self.profiles.is_empty() {
            all.clone()
        } else {
            self.profiles
                .iter()
                .map(|n| edgefit_profiles::find_profile(&all, n).cloned())
                .collect::<Result<Vec<_>, _>>()?
        };
        let data_dir = bundled_data_dir();
        let models = if self.models.is_empty() {
            let dir = data_dir.join("..");
            vec![dir.join("vgg-fmnist.onnx"), dir.join("resnet-fmnist.onnx")]
        } else {
            self.models.clone()
        };
        let precisions: Vec<Precision> = self.precisions.iter().map(|p| p.precision()).collect();
        // Each model's recipe: its MODEL.preprocess.toml, else the flags.
        let mut recipes = Vec::with_capacity(models.len());
        // Whether the test (and calibration) data suit each model: the
        // bundled 28x28 images suit only 28x28 grayscale models; a model
        // they do not suit, given no data of its own, gets its static figures
        // and no accuracy.
        let mut data_fits = Vec::with_capacity(models.len());
        let mut calib_fits = Vec::with_capacity(models.len());
        for m in &models {
            let (shape, weights) = input_shape_of(m)?;
            let fits = self.data.is_some() || check_bundled(None, &shape, "--data").is_ok();
            if !weights {
                eprintln!(
                    "{}: a graph-only export (no weight values): sizes and memory only, no \
                     accuracy and no pruned variants",
                    m.display()
                );
            } else if fits && precisions.contains(&Precision::Int8) {
                check_bundled(self.calib.as_deref(), &shape, "--calib")?;
            }
            if weights && !fits {
                eprintln!(
                    "{}: takes {shape:?}, the bundled images are 28x28 grayscale: sizes and \
                     memory only, no accuracy (give test images with --data)",
                    m.display()
                );
            }
            data_fits.push(fits);
            calib_fits.push(
                weights
                    && fits
                    && (self.calib.is_some() || check_bundled(None, &shape, "--calib").is_ok()),
            );
            let own = m.with_extension("preprocess.toml");
            let recipe = if own.is_file() {
                // The model's own recipe file wins over the flags.
                eprintln!("{}: preprocessing from {}", m.display(), own.display());
                RecipeArgs::from_file(&own).recipe(&shape)
            } else {
                self.recipe.recipe(&shape)
            }
            .with_context(|| format!("preprocessing for {}", m.display()))?;
            recipes.push(recipe);
        }
        let test = open_source(self.data.as_deref(), Role::Test, self.limit, None, None)
            .context("test data")?;
        let pruning = self
            .sparsity
            .iter()
            .chain(&self.prune_channels)
            .any(|s| *s > 0.0);
        let calib = if precisions.contains(&Precision::Int8)
            || (pruning && calib_fits.iter().any(|f| *f))
        {
            Some(
                open_source(
                    self.calib.as_deref(),
                    Role::Calibration,
                    Some(self.calib_samples),
                    None,
                    None,
                )
                .context("calibration data")?,
            )
        } else {
            None
        };
        // Removed when it drops, on success and on every error path.
        let work_dir = tempfile::Builder::new()
            .prefix("edgefit-compare-")
            .tempdir()
            .context("create a work folder")?;
        let work = work_dir.path().to_owned();
        let plans_dir = self.out.join("plans");
        std::fs::create_dir_all(&plans_dir)
            .with_context(|| format!("create {}", plans_dir.display()))?;
        let spec = CompareSpec {
            models: &models,
            precisions: &precisions,
            sparsities: &self.sparsity,
            channel_sparsities: &self.prune_channels,
            test: &test,
            calib: calib.as_ref(),
            recipes: &recipes,
            work_dir: &work,
            plans_dir: &plans_dir,
            data_fits: &data_fits,
            calib_fits: &calib_fits,
            tile_budgets: &edgefit::compare::tile_budgets(&profiles),
        };
        let bar = progress::bar("compare");
        let mut cb = |stage: &str, done: usize, total: usize| {
            bar.set_prefix(stage.to_owned());
            progress::callback(&bar)(done, total);
        };
        let variants = measure_variants(&spec, &mut cb);
        bar.finish_and_clear();
        let variants = variants.context("compare")?;

        let devices = if self.port.given() {
            self.measure_on_device(&self.port, &variants, &all)?
        } else {
            Vec::new()
        };
        drop(work_dir);
        let criterion = match self.criterion {
            CriterionArg::Accuracy => Criterion::Accuracy,
            CriterionArg::Latency => Criterion::Latency,
            CriterionArg::Energy => Criterion::Energy,
        };
        let rows = rows(&variants, &profiles, &devices);
        // The seed's comparison, from the bundled graph-only ImageNet exports.
        let seed = edgefit::seed::seed_comparison(&data_dir.join("../imagenet"), &profiles)
            .context("the VGG-against-ResNet networks at ImageNet size")?;
        let mut r = results(
            utc_now(),
            host_name(),
            criterion,
            rows,
            &profiles,
            &variants,
        );
        r.seed = seed;
        if !self.family.is_empty() {
            use edgefit::family::{family_figures, members, Family};
            let families: Vec<Family> = self
                .family
                .iter()
                .map(|f| match f {
                    FamilyArg::Vgg => Family::Vgg,
                    FamilyArg::Resnet => Family::Resnet,
                })
                .collect();
            let all = members(
                &families,
                &self.depths,
                &self.widths,
                &self.resolutions,
                self.classes,
            )?;
            eprintln!(
                "generating {} networks into {}",
                all.len(),
                self.out.join("family").display()
            );
            r.family = family_figures(&all, &self.out.join("family"), &profiles)
                .context("the architecture families")?;
        }
        let written = write_report(&r, &self.out)
            .with_context(|| format!("write the report into {}", self.out.display()))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        print!("{}", edgefit_report::render_text(&r));
        let measured = variants.iter().filter(|v| v.accuracy.is_ok()).count();
        println!(
            "\naccuracy: {}; latency and energy: \"measured\" where a device or this host ran \
             the plan, else estimated from the profile (see each figure's source)",
            if measured == 0 {
                "not measured (see above)".to_owned()
            } else {
                format!("measured on {} test images", test.len())
            }
        );
        println!(
            "wrote {} files into {} (open report.html)",
            written.len(),
            self.out.display()
        );
        Ok(())
    }

    /// Flashes and benches every variant that fits the device on `port`.
    fn measure_on_device(
        &self,
        port: &PortArgs,
        variants: &[Variant],
        all: &[edgefit_profiles::Profile],
    ) -> anyhow::Result<Vec<DeviceMeasurement>> {
        let mut client = port.connect()?;
        let board = client.device().board.clone();
        let profile = match &self.device_profile {
            Some(n) => edgefit_profiles::find_profile(all, n)?.name.clone(),
            None => match all.iter().find(|p| p.name.contains(&board)) {
                Some(p) => p.name.clone(),
                None => bail!(
                    "no profile matches the device's board `{board}`: pass --device-profile NAME"
                ),
            },
        };
        let source = open_source(
            self.data.as_deref(),
            Role::Test,
            Some(self.device_limit),
            None,
            None,
        )
        .context("test data")?;
        let mut out = Vec::new();
        for v in variants {
            let Some(plan_path) = &v.plan_path else {
                // Laid out for its sizes only: nothing to run.
                continue;
            };
            let image = std::fs::read(plan_path)
                .with_context(|| format!("read {}", plan_path.display()))?;
            let dev = client.device().clone();
            if image.len() > dev.plan_slot_bytes as usize
                || v.arena_bytes > u64::from(dev.arena_bytes)
            {
                eprintln!(
                    "{} {}: does not fit {board} (plan {} B, slot {} B; arena {} B, device {} B), not measured there",
                    v.model, v.variant, image.len(), dev.plan_slot_bytes, v.arena_bytes, dev.arena_bytes
                );
                continue;
            }
            let bar = progress::bytes_bar("flash");
            flash_plan(&mut client, &image, &mut progress::callback(&bar))
                .with_context(|| format!("flash {} {} to {board}", v.model, v.variant))?;
            bar.finish_and_clear();
            let bar = progress::bar("bench");
            let (shape, recorded) = artifact_input(&image)?;
            let recipe = match recorded {
                Some(r) => r,
                None => self.recipe.recipe(&shape)?,
            };
            let data = EvalData {
                source: &source,
                recipe: &recipe,
                input_shape: &shape,
                on_bad: OnBadImage::Fail,
            };
            let report = bench(
                &mut client,
                &image,
                &data,
                BenchOptions {
                    compare_outputs: true,
                    engine: None,
                },
                &mut progress::callback(&bar),
            )
            .with_context(|| format!("bench {} {} on {board}", v.model, v.variant))?;
            bar.finish_and_clear();
            let energy = report.energy_uj_per_inference.value.map(|uj| uj / 1000.0);
            out.push(DeviceMeasurement {
                model: v.model.clone(),
                variant: v.variant.clone(),
                profile: profile.clone(),
                device: format!("{board} ({})", report.latency.source),
                latency_ms: report.latency.us.p50_us / 1000.0,
                energy_mj: energy,
                sensor: energy.map(|_| report.energy_uj_per_inference.source.clone()),
            });
        }
        Ok(out)
    }
}

//! `edgefit bench`: a field benchmark of the artifact a device runs. For a
//! plan, the host quantises each test image with the plan's input
//! parameters, sends it, and checks each record; the same plan runs in the
//! host engine on the same bytes, so every record is also checked against the
//! host's prediction and output bytes. For a tract model artifact (the Linux
//! agent's tract engines) the host sends the f32 image and checks each record
//! against tract's f32 reference on the host.

use std::path::Path;

use edgefit_artifact::{ArtifactKind, TractArtifact, TractPrecision};
use edgefit_engine::{KernelPath, Plan, TensorDesc};
use edgefit_proto::{sample_parts, BenchSummary, EngineKind, HostMsg, TimingSource};
use serde::{Deserialize, Serialize};

use super::client::{Client, ClientError, DeviceIdentity, LinkStats, Reply};
use crate::compile::precision_name;
use crate::data::{OnBadImage, Recipe};
use crate::evaluate::EvalData;
use crate::evaluate::LatencyStats;
use crate::inspect_plan::inspect_plan;
use crate::reference::TractReference;
use crate::runner::{encode_input, tensor_bytes, PlanRunner};

pub const BENCH_SCHEMA: &str = "edgefit.bench.v1";

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("not a valid plan: {0}")]
    BadPlan(String),
    #[error("the device has no active plan: flash one first (edgefit flash --port ... PLAN.efp)")]
    NoPlan,
    #[error(
        "the device runs plan id {device_id} (CRC {device_crc:08x}), not this plan \
         (id {plan_id}, CRC {plan_crc:08x}): flash it first"
    )]
    OtherPlan {
        device_id: u32,
        device_crc: u32,
        plan_id: u32,
        plan_crc: u32,
    },
    #[error("sample {index}: {source}")]
    Sample {
        index: usize,
        #[source]
        source: ClientError,
    },
    #[error("host engine: {0}")]
    Host(String),
    #[error("sample {index}: the device answered for sample {got}; records are out of sequence")]
    Sequence { index: usize, got: u32 },
    #[error(
        "the device's summary counts {claimed} samples but {received} records arrived: \
         refusing the benchmark (the device's tally or the link is wrong)"
    )]
    SummaryCount { claimed: u32, received: usize },
    #[error("the device's summary is for plan id {claimed:08x}, the benchmark ran {plan_id:08x}")]
    SummaryPlan { claimed: u32, plan_id: u32 },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// A figure with where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sourced<T> {
    pub value: Option<T>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanSummary {
    pub plan_id: u32,
    pub crc32: String,
    /// `plan` (native engine) or `tract-f32` / `tract-f16` (tract model artifact).
    pub artifact: String,
    pub precision: String,
    pub size_bytes: usize,
    pub arena_bytes: usize,
    pub macs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRow {
    pub index: usize,
    pub label: u32,
    pub predicted: u16,
    pub host_predicted: usize,
    /// Device output bytes equal the host engine's (None: not requested).
    pub outputs_equal: Option<bool>,
    pub ticks: u64,
    pub energy_uj: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceLatency {
    /// How the ticks were counted and what they mean.
    pub source: String,
    pub tick_hz: u64,
    pub ticks_mean: f64,
    pub ticks_min: u64,
    pub ticks_max: u64,
    /// Ticks converted to microseconds of the device's own time base.
    pub us: LatencyStats,
}

/// A benchmark's report: written as JSON (`edgefit bench -o X.json`, schema
/// edgefit.bench.v1) and read back the same way (`edgefit report`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema: String,
    pub device: DeviceIdentity,
    pub plan: PlanSummary,
    /// The engine that ran the samples (`native`, `tract-cpu`, `tract-cuda`).
    pub engine: String,
    /// Why the engine is not the accelerator, when the device has none in
    /// use (its hello's `accelerator`), else empty.
    pub engine_note: String,
    pub samples: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Share of samples whose device prediction equals the host engine's.
    pub agreement_with_host: f64,
    /// Samples whose raw output bytes equal the host engine's (None when
    /// outputs were not requested).
    pub outputs_identical: Option<usize>,
    pub latency: DeviceLatency,
    /// Instructions executed per inference: measured only under QEMU's
    /// `-icount shift=0`, where virtual time counts instructions.
    pub instructions_per_inference: Sourced<f64>,
    pub instructions_per_mac: Sourced<f64>,
    pub arena_bytes_used: Sourced<u32>,
    pub stack_high_water_bytes: Sourced<u32>,
    /// Peak resident memory of the device's process during the run.
    pub peak_rss_bytes: Sourced<u64>,
    /// Accelerator memory held by the model and its run.
    pub gpu_memory_bytes: Sourced<u64>,
    pub energy_uj_per_inference: Sourced<f64>,
    pub avg_power_mw: Sourced<u32>,
    pub link: LinkStats,
    pub records: Vec<SampleRow>,
}

#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Ask for each sample's raw output bytes and compare them with the host's.
    pub compare_outputs: bool,
    /// The engine to ask for (`None`: the device's best for the artifact).
    pub engine: Option<EngineKind>,
}

/// The host's copy of what the device runs, to check every record against.
enum HostModel<'a> {
    Plan {
        plan: Plan<'a>,
        runner: Box<PlanRunner<'a>>,
        input: TensorDesc,
        macs: u64,
    },
    Tract {
        precision: TractPrecision,
        reference: TractReference,
        input_values: usize,
        last: Vec<u8>,
    },
}

impl<'a> HostModel<'a> {
    fn load(image: &'a [u8], kind: ArtifactKind) -> Result<Self, BenchError> {
        let bad = |e: String| BenchError::BadPlan(e);
        match kind {
            ArtifactKind::Plan => {
                let plan = Plan::parse(image).map_err(|e| bad(e.to_string()))?;
                let macs = inspect_plan("plan", image)
                    .map_err(|e| bad(e.to_string()))?
                    .macs;
                // The host's reference run uses the portable kernels: the
                // path every target must match byte for byte.
                let runner = PlanRunner::with_kernels(image, KernelPath::Portable)
                    .map_err(|e| BenchError::Host(e.to_string()))?;
                let input = runner.input_desc();
                Ok(HostModel::Plan {
                    plan,
                    runner: Box::new(runner),
                    input,
                    macs,
                })
            }
            ArtifactKind::Tract(precision) => {
                let a = TractArtifact::parse(image).map_err(|e| bad(e.to_string()))?;
                let reference = TractReference::from_onnx_bytes(
                    a.model,
                    Path::new("the tract artifact's model"),
                    &a.input_shape,
                )
                .map_err(|e| BenchError::Host(e.to_string()))?;
                Ok(HostModel::Tract {
                    precision,
                    reference,
                    input_values: a.input_shape.iter().product(),
                    last: Vec::new(),
                })
            }
        }
    }

    fn sample_bytes(&self) -> usize {
        match self {
            HostModel::Plan { input, .. } => tensor_bytes(input),
            HostModel::Tract { input_values, .. } => input_values * 4,
        }
    }

    /// The bytes the device takes for `pixels`.
    fn encode(&self, pixels: &[f32], out: &mut [u8]) -> Result<(), BenchError> {
        match self {
            HostModel::Plan { input, .. } => {
                encode_input(input, pixels, out).map_err(|e| BenchError::Host(e.to_string()))
            }
            HostModel::Tract { .. } => {
                for (o, v) in out.chunks_exact_mut(4).zip(pixels) {
                    o.copy_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
        }
    }

    /// Runs the host's copy; returns its prediction.
    fn run(&mut self, pixels: &[f32]) -> Result<usize, BenchError> {
        let host = |e: String| BenchError::Host(e);
        match self {
            HostModel::Plan { runner, .. } => {
                let out = runner.run(pixels).map_err(|e| host(e.to_string()))?;
                Ok(crate::runner::argmax(&out))
            }
            HostModel::Tract {
                reference, last, ..
            } => {
                let out = reference
                    .run(pixels)
                    .map_err(|e| host(e.to_string()))?
                    .swap_remove(0);
                last.clear();
                last.extend(out.iter().flat_map(|v| v.to_le_bytes()));
                Ok(crate::runner::argmax(&out))
            }
        }
    }

    /// Whether the device's output bytes must equal the host's: plans
    /// (bit-exact engine) and f32 tract artifacts (the same tract); an f16
    /// artifact's outputs differ from the f32 reference by design.
    fn compares_outputs(&self) -> bool {
        !matches!(
            self,
            HostModel::Tract {
                precision: TractPrecision::F16,
                ..
            }
        )
    }

    fn raw_output(&self) -> Result<&[u8], BenchError> {
        match self {
            HostModel::Plan { runner, .. } => runner
                .raw_output()
                .map_err(|e| BenchError::Host(e.to_string())),
            HostModel::Tract { last, .. } => Ok(last),
        }
    }

    fn summary(&self, image: &[u8], plan_id: u32, kind: ArtifactKind) -> PlanSummary {
        let (precision, arena, macs) = match self {
            HostModel::Plan { plan, macs, .. } => {
                (precision_name(plan.precision()), plan.arena_size(), *macs)
            }
            HostModel::Tract { precision, .. } => (precision.name(), 0, 0),
        };
        PlanSummary {
            plan_id,
            crc32: format!("{:08x}", edgefit_proto::crc32(image)),
            artifact: kind.name().into(),
            precision: precision.into(),
            size_bytes: image.len(),
            arena_bytes: arena,
            macs,
        }
    }
}

/// The input shape (ONNX order) an artifact takes, and the preprocessing
/// recipe a plan records (tract artifacts record none).
pub fn artifact_input(image: &[u8]) -> Result<(Vec<usize>, Option<Recipe>), BenchError> {
    let (kind, _) =
        edgefit_artifact::identify(image).map_err(|e| BenchError::BadPlan(e.to_string()))?;
    match kind {
        ArtifactKind::Plan => {
            crate::runner::plan_input(image).map_err(|e| BenchError::BadPlan(e.to_string()))
        }
        ArtifactKind::Tract(_) => {
            let a = TractArtifact::parse(image).map_err(|e| BenchError::BadPlan(e.to_string()))?;
            Ok((a.input_shape.to_vec(), None))
        }
    }
}

/// Samples read and preprocessed per parallel batch while benchmarking.
const BATCH: usize = 64;

/// Benchmarks the device's active plan, which must be `image`, over `data`
/// (every sample preprocessed with `data.recipe`, then quantised with the
/// plan's input parameters: the bytes the device receives are the bytes the
/// host's engine runs). `progress(done, total)`.
pub fn bench(
    client: &mut Client,
    image: &[u8],
    data: &EvalData,
    options: BenchOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BenchReport, BenchError> {
    let (kind, plan_id) =
        edgefit_artifact::identify(image).map_err(|e| BenchError::BadPlan(e.to_string()))?;
    let plan_crc = edgefit_proto::crc32(image);
    let device = client.refresh()?.clone();
    let active = device.active_plan.ok_or(BenchError::NoPlan)?;
    if active.crc32 != plan_crc || active.plan_id != plan_id {
        return Err(BenchError::OtherPlan {
            device_id: active.plan_id,
            device_crc: active.crc32,
            plan_id,
            plan_crc,
        });
    }
    let mut host = HostModel::load(image, kind)?;
    let compare_outputs = options.compare_outputs && host.compares_outputs();
    let mut sample = vec![0u8; host.sample_bytes()];
    let n = data.source.len();

    client.expect_ack(&HostMsg::BenchStart {
        plan_id: Some(plan_id),
        samples: n as u32,
        want_outputs: compare_outputs,
        engine: options.engine,
    })?;
    let mut records = Vec::with_capacity(n);
    progress(0, n);
    for start in (0..n).step_by(BATCH) {
        // Every sample goes to the device: an unreadable one stops the bench.
        let (batch, _) = data.source.tensors(
            start..(start + BATCH).min(n),
            data.recipe,
            data.input_shape,
            OnBadImage::Fail,
        )?;
        for (i, pixels, label) in batch {
            host.encode(&pixels, &mut sample)?;
            let mut record = None;
            for part in sample_parts(i as u32, &sample) {
                let reply = client
                    .request(&part)
                    .map_err(|source| BenchError::Sample { index: i, source })?;
                if let Reply::Record(r) = reply {
                    record = Some(r);
                }
            }
            let record = record.ok_or(BenchError::Sample {
                index: i,
                source: ClientError::Unexpected {
                    during: "Sample",
                    got: "no Record",
                },
            })?;
            if record.sample as usize != i {
                return Err(BenchError::Sequence {
                    index: i,
                    got: record.sample,
                });
            }
            let host_predicted = host.run(&pixels)?;
            let outputs_equal = match &record.outputs {
                Some(bytes) => Some(bytes.as_slice() == host.raw_output()?),
                None => None,
            };
            records.push(SampleRow {
                index: i,
                label,
                predicted: record.predicted,
                host_predicted,
                outputs_equal,
                ticks: record.ticks,
                energy_uj: record.energy_uj,
            });
            progress(i + 1, n);
        }
    }
    let summary = match client.request(&HostMsg::BenchEnd)? {
        Reply::Summary(s) => s,
        _ => {
            return Err(BenchError::Client(ClientError::Unexpected {
                during: "BenchEnd",
                got: "an answer other than BenchSummary",
            }))
        }
    };
    check_summary(&summary, plan_id, records.len())?;
    let plan = host.summary(image, plan_id, kind);
    Ok(report(device, plan, records, summary, client.stats))
}

/// The device's end-of-bench summary must agree with the records the host
/// received: its figures (mean latency, energy per inference) divide by
/// them.
fn check_summary(summary: &BenchSummary, plan_id: u32, received: usize) -> Result<(), BenchError> {
    if usize::try_from(summary.samples).ok() != Some(received) {
        return Err(BenchError::SummaryCount {
            claimed: summary.samples,
            received,
        });
    }
    if summary.plan_id != plan_id {
        return Err(BenchError::SummaryPlan {
            claimed: summary.plan_id,
            plan_id,
        });
    }
    Ok(())
}

fn report(
    device: DeviceIdentity,
    plan: PlanSummary,
    records: Vec<SampleRow>,
    summary: BenchSummary,
    link: LinkStats,
) -> BenchReport {
    let n = records.len();
    let correct = records
        .iter()
        .filter(|r| r.predicted as usize == r.label as usize)
        .count();
    let agree = records
        .iter()
        .filter(|r| r.predicted as usize == r.host_predicted)
        .count();
    let outputs_identical = records
        .iter()
        .map(|r| r.outputs_equal)
        .collect::<Option<Vec<bool>>>()
        .map(|v| v.into_iter().filter(|&e| e).count());
    let ratio = |a: usize| if n == 0 { 0.0 } else { a as f64 / n as f64 };
    let tick_hz = summary.tick_hz.max(1);
    let ticks: Vec<u64> = records.iter().map(|r| r.ticks).collect();
    let mean_ticks = if n == 0 {
        0.0
    } else {
        ticks.iter().sum::<u64>() as f64 / n as f64
    };
    let timing = timing_source_text(summary.timing, tick_hz);
    let mut us = LatencyStats::from_samples(
        ticks
            .iter()
            .map(|&t| t as f64 * 1e6 / tick_hz as f64)
            .collect(),
    );
    us.source = "measured on the device".into();
    let icount = summary.timing == TimingSource::QemuIcount;
    // Under -icount shift=0 one instruction takes 1 ns of virtual time.
    let instructions = icount.then(|| mean_ticks * 1e9 / tick_hz as f64);
    let no_sensor = format!(
        "not measured: the device reports power sensor {:?}",
        summary.power_sensor
    );
    let energy = summary.energy_uj.map(|e| e as f64 / n.max(1) as f64);
    BenchReport {
        schema: BENCH_SCHEMA.into(),
        engine: summary.engine.name().into(),
        engine_note: engine_note(&device, summary.engine),
        peak_rss_bytes: Sourced {
            value: summary.peak_rss_bytes,
            source: if summary.peak_rss_bytes.is_some() {
                "measured on the device: VmHWM of the agent process, reset at BenchStart".into()
            } else {
                "not measured by this device".into()
            },
        },
        gpu_memory_bytes: Sourced {
            value: summary.gpu_memory_bytes,
            source: if summary.gpu_memory_bytes.is_some() {
                "measured on the device: drop in the GPU's free memory (cuMemGetInfo) since the model was prepared".into()
            } else {
                "not measured: no accelerator used, or not readable".into()
            },
        },
        samples: n,
        correct,
        accuracy: ratio(correct),
        agreement_with_host: ratio(agree),
        outputs_identical,
        latency: DeviceLatency {
            source: timing.clone(),
            tick_hz,
            ticks_mean: mean_ticks,
            ticks_min: summary.min_ticks,
            ticks_max: summary.max_ticks,
            us,
        },
        instructions_per_inference: Sourced {
            value: instructions,
            source: if icount {
                "measured: QEMU -icount shift=0 virtual time (1 ns per instruction)".into()
            } else {
                "not measured: the device counts time, not instructions".into()
            },
        },
        instructions_per_mac: Sourced {
            value: instructions
                .filter(|_| plan.macs > 0)
                .map(|i| i / plan.macs as f64),
            source: if icount {
                "measured instructions / the plan's MACs".into()
            } else {
                "not measured".into()
            },
        },
        arena_bytes_used: Sourced {
            value: (summary.arena_bytes_used > 0).then_some(summary.arena_bytes_used),
            source: if summary.arena_bytes_used > 0 {
                "reported by the device".into()
            } else {
                "none: the engine allocates its own memory (see peak resident)".into()
            },
        },
        stack_high_water_bytes: Sourced {
            value: (summary.stack_high_water_bytes > 0).then_some(summary.stack_high_water_bytes),
            source: if summary.stack_high_water_bytes > 0 {
                "measured on the device (stack painting)".into()
            } else {
                "not measured by this device".into()
            },
        },
        energy_uj_per_inference: Sourced {
            value: energy,
            source: if energy.is_some() {
                format!("measured by the device's {:?} sensor", summary.power_sensor)
            } else {
                no_sensor.clone()
            },
        },
        avg_power_mw: Sourced {
            value: summary.avg_power_mw,
            source: if summary.avg_power_mw.is_some() {
                format!("measured by the device's {:?} sensor", summary.power_sensor)
            } else {
                no_sensor
            },
        },
        plan,
        device,
        link,
        records,
    }
}

/// Why a tract artifact ran on the CPU when the device could have an
/// accelerator: the device's own explanation.
fn engine_note(device: &DeviceIdentity, engine: EngineKind) -> String {
    match engine {
        EngineKind::TractCpu if device.accelerator.starts_with("none") => {
            device.accelerator.clone()
        }
        EngineKind::TractCpu if device.accelerator.starts_with("cuda") => {
            "the device has a GPU but tract-cuda could not run this model (the agent's log says why); \
             it ran on the CPU"
                .into()
        }
        _ => String::new(),
    }
}

fn timing_source_text(t: TimingSource, hz: u64) -> String {
    match t {
        TimingSource::DwtCycles => format!("measured: DWT cycle counter ({hz} Hz core clock)"),
        TimingSource::SysTick => format!("measured: SysTick at {hz} Hz"),
        TimingSource::QemuIcount => format!(
            "measured in QEMU virtual time (-icount shift=0: 1 ns per instruction; ticks at {hz} Hz); not real-hardware speed"
        ),
        TimingSource::MonotonicNs => "measured: CLOCK_MONOTONIC around each inference (ns)".into(),
    }
}

/// A one-screen summary.
pub fn render_text(r: &BenchReport) -> String {
    let mut s = format!(
        "{} {:08x} ({}, {} bytes, arena {}) on {} ({}, {}), engine {}\n",
        r.plan.artifact,
        r.plan.plan_id,
        r.plan.precision,
        r.plan.size_bytes,
        r.plan.arena_bytes,
        r.device.board,
        r.device.core,
        if r.device.clock_hz > 0 {
            format!("{} MHz", r.device.clock_hz as f64 / 1e6)
        } else {
            "clock not reported".to_owned()
        },
        r.engine
    );
    if !r.engine_note.is_empty() {
        s.push_str(&format!("engine note  {}\n", r.engine_note));
    }
    s.push_str(&format!(
        "accuracy     {:.2}% ({} / {})\nagreement    {:.2}% of predictions equal the host engine's",
        r.accuracy * 100.0,
        r.correct,
        r.samples,
        r.agreement_with_host * 100.0
    ));
    if let Some(same) = r.outputs_identical {
        s.push_str(&format!(
            "; output bytes identical on {same} / {}",
            r.samples
        ));
    }
    s.push('\n');
    s.push_str(&format!(
        "latency      mean {:.1} us, p50 {:.1}, p90 {:.1}, max {:.1} ({})\n",
        r.latency.us.mean_us,
        r.latency.us.p50_us,
        r.latency.us.p90_us,
        r.latency.us.max_us,
        r.latency.source
    ));
    if let (Some(i), Some(m)) = (
        r.instructions_per_inference.value,
        r.instructions_per_mac.value,
    ) {
        s.push_str(&format!(
            "instructions {:.0} per inference, {:.2} per MAC ({} MACs)\n",
            i, m, r.plan.macs
        ));
    }
    let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    s.push_str(&format!(
        "memory       arena {} bytes ({}), stack high-water {} bytes ({})\n",
        opt(r.arena_bytes_used.value),
        r.arena_bytes_used.source,
        opt(r.stack_high_water_bytes.value),
        r.stack_high_water_bytes.source
    ));
    if let Some(rss) = r.peak_rss_bytes.value {
        s.push_str(&format!(
            "process      peak resident {:.1} MiB ({})\n",
            rss as f64 / (1 << 20) as f64,
            r.peak_rss_bytes.source
        ));
    }
    if let Some(gpu) = r.gpu_memory_bytes.value {
        s.push_str(&format!(
            "gpu memory   {:.1} MiB ({})\n",
            gpu as f64 / (1 << 20) as f64,
            r.gpu_memory_bytes.source
        ));
    }
    match r.energy_uj_per_inference.value {
        Some(uj) => s.push_str(&format!(
            "energy       {uj:.1} uJ per inference ({})\n",
            r.energy_uj_per_inference.source
        )),
        None => s.push_str(&format!(
            "energy       {}\n",
            r.energy_uj_per_inference.source
        )),
    }
    if r.link.had_trouble() {
        s.push_str(&format!(
            "link         {} frames, {} retransmitted, {} damaged answers, \
             {} duplicate and {} stale answers dropped\n",
            r.link.frames_sent,
            r.link.retransmissions,
            r.link.damaged_answers,
            r.link.duplicate_answers,
            r.link.stale_answers
        ));
    }
    s
}

/// One CSV row per sample; the header names the columns.
pub fn render_csv(r: &BenchReport) -> String {
    edgefit_report::csv_table(
        &[
            "board",
            "plan_id",
            "precision",
            "index",
            "label",
            "predicted",
            "host_predicted",
            "outputs_equal",
            "ticks",
            "tick_hz",
            "latency_us",
            "energy_uj",
        ],
        r.records.iter().map(|row| {
            [
                r.device.board.clone(),
                format!("{:08x}", r.plan.plan_id),
                r.plan.precision.to_string(),
                row.index.to_string(),
                row.label.to_string(),
                row.predicted.to_string(),
                row.host_predicted.to_string(),
                row.outputs_equal.map_or(String::new(), |b| b.to_string()),
                row.ticks.to_string(),
                r.latency.tick_hz.to_string(),
                format!(
                    "{:.3}",
                    row.ticks as f64 * 1e6 / r.latency.tick_hz.max(1) as f64
                ),
                row.energy_uj.map_or(String::new(), |e| e.to_string()),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::time::Duration;

    use edgefit_engine::{DType, OpDesc, OpKind, PlanBuilder, Precision, Quant};
    use edgefit_proto::{
        encode_frame_vec, BenchRecord, DeviceInfo, DeviceMsg, FrameReader, HostMsg, PlanInfo,
        PowerSensorKind, MAX_FRAME, PROTOCOL_VERSION,
    };

    use super::*;
    use crate::device::{ClientConfig, Link};

    /// An f32 Dense plan `[1, 8] -> [1, 5]`.
    fn plan() -> Vec<u8> {
        let mut b = PlanBuilder::new(Precision::F32);
        let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[5, 8], &[0.25; 40]);
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size(64)
            .set_plan_id(7);
        b.finish_checked().unwrap()
    }

    /// A device in memory that answers the benchmark, with a summary that
    /// claims `extra` samples more than it ran, and every record sent twice
    /// when `twice`.
    struct FakeDevice {
        active: PlanInfo,
        reader: FrameReader<MAX_FRAME>,
        out: VecDeque<u8>,
        seq: u32,
        ran: u32,
        extra: u32,
        twice: bool,
    }

    impl FakeDevice {
        fn send(&mut self, msg: &DeviceMsg<'_>, copies: usize) {
            let frame = encode_frame_vec(self.seq, msg).unwrap();
            self.seq += 1;
            for _ in 0..copies {
                self.out.extend(&frame);
            }
        }

        fn answer(&mut self, seq: u32, msg: HostMsg<'_>) {
            match msg {
                HostMsg::Hello { .. } => {
                    let info = DeviceInfo {
                        protocol_version: PROTOCOL_VERSION,
                        engine_version: edgefit_engine::FORMAT_VERSION,
                        board: "fake",
                        core: "none",
                        clock_hz: 1,
                        ram_bytes: 1 << 20,
                        flash_bytes: 1 << 20,
                        plan_slot_bytes: 1 << 20,
                        plan_slots: 2,
                        arena_bytes: 1 << 20,
                        power_sensor: PowerSensorKind::None,
                        timing: TimingSource::MonotonicNs,
                        tick_hz: 1_000_000_000,
                        active_plan: Some(self.active),
                        engines: "native",
                        accelerator: "",
                    };
                    self.send(&DeviceMsg::DeviceHello(info), 1);
                }
                HostMsg::Sample { index, .. } => {
                    self.ran += 1;
                    let rec = BenchRecord {
                        sample: index,
                        predicted: 0,
                        ticks: 100,
                        outputs: None,
                        energy_uj: None,
                    };
                    self.send(&DeviceMsg::Record(rec), if self.twice { 2 } else { 1 });
                }
                HostMsg::BenchEnd => {
                    let summary = BenchSummary {
                        plan_id: self.active.plan_id,
                        slot: 0,
                        samples: self.ran + self.extra,
                        timing: TimingSource::MonotonicNs,
                        tick_hz: 1_000_000_000,
                        clock_hz: 1,
                        total_ticks: 100 * u64::from(self.ran),
                        min_ticks: 100,
                        max_ticks: 100,
                        arena_bytes_used: 64,
                        stack_high_water_bytes: 0,
                        power_sensor: PowerSensorKind::None,
                        energy_uj: None,
                        avg_power_mw: None,
                        idle_power_mw: None,
                        engine: EngineKind::Native,
                        peak_rss_bytes: None,
                        gpu_memory_bytes: None,
                    };
                    self.send(&DeviceMsg::BenchSummary(summary), 1);
                }
                _ => self.send(&DeviceMsg::Ack { seq }, 1),
            }
        }
    }

    impl Write for FakeDevice {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut rest = buf;
            while !rest.is_empty() {
                let (used, frame) = self.reader.feed(rest);
                rest = &rest[used..];
                if let Some(Ok(frame)) = frame {
                    let mut frame = frame.to_vec();
                    if let Ok((seq, msg)) = edgefit_proto::decode_frame::<HostMsg>(&mut frame) {
                        self.answer(seq, msg);
                    }
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for FakeDevice {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.out.is_empty() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.out.len());
            for (b, o) in buf.iter_mut().zip(self.out.drain(..n)) {
                *b = o;
            }
            Ok(n)
        }
    }

    impl Link for FakeDevice {
        fn set_read_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(image: &[u8], extra: u32, twice: bool) -> Result<BenchReport, BenchError> {
        let device = FakeDevice {
            active: PlanInfo {
                plan_id: 7,
                size: image.len() as u32,
                crc32: edgefit_proto::crc32(image),
                slot: 0,
            },
            reader: FrameReader::new(),
            out: VecDeque::new(),
            seq: 0,
            ran: 0,
            extra,
            twice,
        };
        let config = ClientConfig {
            timeout: Duration::from_millis(10),
            ..ClientConfig::default()
        };
        let mut client = Client::connect(Box::new(device), config).unwrap();
        let dataset = crate::data::Dataset {
            rows: 2,
            cols: 4,
            pixels: vec![7; 300 * 8],
            labels: vec![0; 300],
        };
        let source = dataset.to_source(std::path::Path::new("test"));
        let recipe = Recipe::plain(crate::data::ChannelOrder::Gray);
        let data = EvalData {
            source: &source,
            recipe: &recipe,
            input_shape: &[1, 1, 2, 4],
            on_bad: OnBadImage::Fail,
        };
        let options = BenchOptions {
            compare_outputs: false,
            engine: None,
        };
        bench(&mut client, image, &data, options, &mut |_, _| {})
    }

    #[test]
    fn a_summary_claiming_more_samples_than_records_is_refused() {
        let image = plan();
        let r = run(&image, 0, false).unwrap();
        assert_eq!(r.samples, 300);
        let e = run(&image, 5, false).unwrap_err();
        assert!(matches!(
            e,
            BenchError::SummaryCount {
                claimed: 305,
                received: 300
            }
        ));
        let text = e.to_string();
        assert!(
            text.contains("305 samples") && text.contains("300 records"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_records_are_dropped_and_counted() {
        let image = plan();
        let r = run(&image, 0, true).unwrap();
        assert_eq!(r.samples, 300);
        assert!(r.records.iter().enumerate().all(|(i, rec)| rec.index == i));
        // Each record's copy arrives while the next request waits: 299 of
        // them then, the last one during BenchEnd.
        assert_eq!(r.link.duplicate_answers, 300);
        assert_eq!(r.link.stale_answers, 0);
        assert!(render_text(&r).contains("300 duplicate and 0 stale answers dropped"));
    }
}

//! `edgefit bench`: a field benchmark of the plan a device runs. The host
//! quantises each test image with the plan's input parameters, sends it, and
//! checks each record; the same plan runs in the host engine on the same
//! bytes, so every record is also checked against the host's prediction and
//! output bytes.

use edgefit_engine::{KernelPath, Plan};
use edgefit_proto::{sample_parts, BenchSummary, HostMsg, TimingSource};
use serde::Serialize;

use super::client::{Client, ClientError, DeviceIdentity, LinkStats, Reply};
use crate::compile::precision_name;
use crate::data::Dataset;
use crate::evaluate::LatencyStats;
use crate::inspect_plan::inspect_plan;
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
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A figure with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Sourced<T> {
    pub value: Option<T>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub plan_id: u32,
    pub crc32: String,
    pub precision: &'static str,
    pub size_bytes: usize,
    pub arena_bytes: usize,
    pub macs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleRow {
    pub index: usize,
    pub label: u8,
    pub predicted: u16,
    pub host_predicted: usize,
    /// Device output bytes equal the host engine's (None: not requested).
    pub outputs_equal: Option<bool>,
    pub ticks: u64,
    pub energy_uj: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub schema: &'static str,
    pub device: DeviceIdentity,
    pub plan: PlanSummary,
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
    pub energy_uj_per_inference: Sourced<f64>,
    pub avg_power_mw: Sourced<u32>,
    pub link: LinkStats,
    pub records: Vec<SampleRow>,
}

#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Ask for each sample's raw output bytes and compare them with the host's.
    pub compare_outputs: bool,
}

/// Benchmarks the device's active plan, which must be `image`, over `data`.
/// `progress(done, total)`.
pub fn bench(
    client: &mut Client,
    image: &[u8],
    data: &Dataset,
    options: BenchOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BenchReport, BenchError> {
    let plan = Plan::parse(image).map_err(|e| BenchError::BadPlan(e.to_string()))?;
    let plan_crc = edgefit_proto::crc32(image);
    let device = client.refresh()?.clone();
    let active = device.active_plan.ok_or(BenchError::NoPlan)?;
    if active.crc32 != plan_crc || active.plan_id != plan.plan_id() {
        return Err(BenchError::OtherPlan {
            device_id: active.plan_id,
            device_crc: active.crc32,
            plan_id: plan.plan_id(),
            plan_crc,
        });
    }
    let macs = inspect_plan("plan", image)
        .map_err(|e| BenchError::BadPlan(e.to_string()))?
        .macs;
    // The host's reference run uses the portable kernels: the path every
    // target must match byte for byte.
    let mut host = PlanRunner::with_kernels(image, KernelPath::Portable)
        .map_err(|e| BenchError::Host(e.to_string()))?;
    let input = host.input_desc();
    let mut sample = vec![0u8; tensor_bytes(&input)];

    client.expect_ack(&HostMsg::BenchStart {
        plan_id: Some(plan.plan_id()),
        samples: data.len() as u32,
        want_outputs: options.compare_outputs,
    })?;
    let mut records = Vec::with_capacity(data.len());
    progress(0, data.len());
    for i in 0..data.len() {
        let pixels = data.image_f32(i);
        encode_input(&input, &pixels, &mut sample).map_err(|e| BenchError::Host(e.to_string()))?;
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
        let host_out = host
            .run(&pixels)
            .map_err(|e| BenchError::Host(e.to_string()))?;
        let host_predicted = crate::runner::argmax(&host_out);
        let outputs_equal = match &record.outputs {
            Some(bytes) => {
                let raw = host
                    .raw_output()
                    .map_err(|e| BenchError::Host(e.to_string()))?;
                Some(bytes.as_slice() == raw)
            }
            None => None,
        };
        records.push(SampleRow {
            index: i,
            label: data.labels[i],
            predicted: record.predicted,
            host_predicted,
            outputs_equal,
            ticks: record.ticks,
            energy_uj: record.energy_uj,
        });
        progress(i + 1, data.len());
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
    Ok(report(
        device,
        &plan,
        image,
        macs,
        records,
        summary,
        client.stats,
    ))
}

fn report(
    device: DeviceIdentity,
    plan: &Plan<'_>,
    image: &[u8],
    macs: u64,
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
    us.source = "measured on the device";
    let icount = summary.timing == TimingSource::QemuIcount;
    // Under -icount shift=0 one instruction takes 1 ns of virtual time.
    let instructions = icount.then(|| mean_ticks * 1e9 / tick_hz as f64);
    let no_sensor = format!(
        "not measured: the device reports power sensor {:?}",
        summary.power_sensor
    );
    let energy = summary.energy_uj.map(|e| e as f64 / n.max(1) as f64);
    BenchReport {
        schema: BENCH_SCHEMA,
        plan: PlanSummary {
            plan_id: plan.plan_id(),
            crc32: format!("{:08x}", edgefit_proto::crc32(image)),
            precision: precision_name(plan.precision()),
            size_bytes: image.len(),
            arena_bytes: plan.arena_size(),
            macs,
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
            value: instructions.map(|i| i / macs.max(1) as f64),
            source: if icount {
                "measured instructions / the plan's MACs".into()
            } else {
                "not measured".into()
            },
        },
        arena_bytes_used: Sourced {
            value: Some(summary.arena_bytes_used),
            source: "reported by the device".into(),
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
        device,
        link,
        records,
    }
}

fn timing_source_text(t: TimingSource, hz: u64) -> String {
    match t {
        TimingSource::DwtCycles => format!("measured: DWT cycle counter ({hz} Hz core clock)"),
        TimingSource::SysTick => format!("measured: SysTick at {hz} Hz"),
        TimingSource::QemuIcount => format!(
            "measured in QEMU virtual time (-icount shift=0: 1 ns per instruction; ticks at {hz} Hz); not real-hardware speed"
        ),
        TimingSource::MonotonicNs => "measured: CLOCK_MONOTONIC_RAW (ns)".into(),
    }
}

/// A one-screen summary.
pub fn render_text(r: &BenchReport) -> String {
    let mut s = format!(
        "plan {:08x} ({}, {} bytes, arena {}) on {} ({}, {} MHz)\n",
        r.plan.plan_id,
        r.plan.precision,
        r.plan.size_bytes,
        r.plan.arena_bytes,
        r.device.board,
        r.device.core,
        r.device.clock_hz as f64 / 1e6
    );
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
    s.push_str(&format!(
        "energy       {}\n",
        r.energy_uj_per_inference.source
    ));
    if r.link.retransmissions > 0 || r.link.damaged_answers > 0 {
        s.push_str(&format!(
            "link         {} frames, {} retransmitted, {} damaged answers\n",
            r.link.frames_sent, r.link.retransmissions, r.link.damaged_answers
        ));
    }
    s
}

/// One CSV row per sample; the header names the columns.
pub fn render_csv(r: &BenchReport) -> String {
    let mut s = String::from(
        "board,plan_id,precision,index,label,predicted,host_predicted,outputs_equal,ticks,tick_hz,latency_us,energy_uj\n",
    );
    for row in &r.records {
        s.push_str(&format!(
            "{},{:08x},{},{},{},{},{},{},{},{},{:.3},{}\n",
            r.device.board,
            r.plan.plan_id,
            r.plan.precision,
            row.index,
            row.label,
            row.predicted,
            row.host_predicted,
            row.outputs_equal.map_or(String::new(), |b| b.to_string()),
            row.ticks,
            r.latency.tick_hz,
            row.ticks as f64 * 1e6 / r.latency.tick_hz.max(1) as f64,
            row.energy_uj.map_or(String::new(), |e| e.to_string()),
        ));
    }
    s
}

//! The messages. Variant and field order is the wire format (postcard encodes
//! an enum variant as its index and a struct as its fields in order): append
//! only, and bump [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) on any change.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Host → device. Every request is answered by exactly one [`DeviceMsg`]
/// (named in each variant's doc), or by [`DeviceMsg::Error`] with the
/// request's `seq`. The host sends the next request only after the answer
/// (stop-and-wait), and retransmits a request with the same `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HostMsg<'a> {
    /// `0`: Opens a session. Answer: [`DeviceMsg::DeviceHello`].
    Hello {
        /// The host's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
        protocol_version: u16,
    },
    /// `1`: Liveness check. Answer: [`DeviceMsg::Pong`] with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u32,
    },
    /// `2`: Starts storing a plan image in the (inactive) plan slot, aborting any
    /// transfer in progress. Answer: [`DeviceMsg::Ack`], or `Error` with
    /// [`ErrorCode::PlanTooLarge`] (detail: slot bytes) or
    /// [`ErrorCode::Busy`].
    PlanBegin {
        /// Plan identifier (the plan header's `plan_id`).
        plan_id: u32,
        /// Size of the whole image in bytes.
        total_size: u32,
        /// CRC-32/ISO-HDLC of the whole image as sent.
        crc32: u32,
    },
    /// `3`: The next piece of the image. Chunks are sent in order: `index`
    /// counts from 0 and `offset` is the number of bytes sent before.
    /// Answer: `Ack`, or `Error` with [`ErrorCode::ChunkOutOfOrder`] (detail:
    /// expected offset) or [`ErrorCode::PlanTooLarge`].
    PlanChunk {
        /// Chunk number, from 0.
        index: u32,
        /// Byte offset in the image.
        offset: u32,
        /// At most [`MAX_CHUNK`](crate::MAX_CHUNK) bytes.
        data: &'a [u8],
    },
    /// `4`: All chunks sent: the device checks size and CRC, validates the plan,
    /// makes it the active one. Answer: [`DeviceMsg::PlanStored`], or `Error`
    /// with [`ErrorCode::ChunkOutOfOrder`] (incomplete; detail: bytes
    /// received), [`ErrorCode::PlanCrcMismatch`] (detail: computed CRC),
    /// [`ErrorCode::BadPlan`] or [`ErrorCode::ArenaTooSmall`].
    PlanCommit,
    /// `5`: Drops a transfer in progress; the active plan is untouched.
    /// Answer: `Ack`.
    PlanAbort,
    /// `6`: Starts a benchmark of the active plan. Answer: `Ack`, or `Error`
    /// with [`ErrorCode::NoPlan`] / [`ErrorCode::PlanMismatch`] (detail:
    /// active plan id).
    BenchStart {
        /// Refuse unless this plan is active (`None`: whichever is).
        plan_id: Option<u32>,
        /// Samples that will follow.
        samples: u32,
        /// Send each sample's raw output tensor in its [`BenchRecord`].
        want_outputs: bool,
        /// The engine to run the artifact on (`None`: the device's best for
        /// the artifact's kind; the [`BenchSummary`] says which ran). A
        /// device without it answers [`ErrorCode::EngineUnavailable`].
        engine: Option<EngineKind>,
    },
    /// `7`: One whole input sample (quantised tensor bytes, as the plan's input
    /// expects): the device runs it. Answer: [`DeviceMsg::Record`], or
    /// `Error` with [`ErrorCode::BadSample`] (detail: expected input bytes).
    Sample {
        /// Sample number, from 0.
        index: u32,
        /// At most [`MAX_CHUNK`](crate::MAX_CHUNK) bytes; larger samples go
        /// as [`SampleChunk`](Self::SampleChunk)s and a
        /// [`SampleRun`](Self::SampleRun).
        data: &'a [u8],
    },
    /// `8`: A part of a sample larger than a frame, in order from offset 0.
    /// Answer: `Ack`, or `Error` with [`ErrorCode::ChunkOutOfOrder`] /
    /// [`ErrorCode::BadSample`].
    SampleChunk {
        /// Sample number.
        index: u32,
        /// Byte offset in the sample.
        offset: u32,
        /// At most [`MAX_CHUNK`](crate::MAX_CHUNK) bytes.
        data: &'a [u8],
    },
    /// `9`: Runs the sample assembled from `SampleChunk`s. Answer: `Record`, or
    /// `Error` with [`ErrorCode::BadSample`].
    SampleRun {
        /// Sample number (as in its chunks).
        index: u32,
        /// Total bytes sent in its chunks.
        total_len: u32,
    },
    /// `10`: Ends the benchmark. Answer: [`DeviceMsg::BenchSummary`].
    BenchEnd,
    /// `11`: Drops any transfer or benchmark in progress and returns to idle
    /// (not a reboot; the active plan stays). Answer: `Ack`.
    Reset,
    /// `12`: Presents the device's access token. A device that has one (the
    /// Linux agent started with `--token-file`) refuses every other message
    /// with [`ErrorCode::Unauthorized`] until this one has matched, and
    /// closes the connection on a wrong token. A device without a token
    /// (a serial link: physical access) answers `Ack`. Answer: `Ack`, or
    /// `Error` with [`ErrorCode::Unauthorized`].
    Auth {
        /// The token's bytes (at most [`MAX_CHUNK`](crate::MAX_CHUNK)).
        token: &'a [u8],
    },
}

/// Device → host: the answers to [`HostMsg`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceMsg<'a> {
    /// `0`: Answer to `Hello`: what the device is and has.
    DeviceHello(#[serde(borrow)] DeviceInfo<'a>),
    /// `1`: Answer to `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u32,
    },
    /// `2`: The request with sequence number `seq` was accepted.
    Ack {
        /// Sequence number of the acknowledged frame.
        seq: u32,
    },
    /// `3`: Answer to `PlanCommit`: the plan is stored and active.
    PlanStored(PlanInfo),
    /// `4`: Answer to `Sample` / `SampleRun`: one inference.
    Record(#[serde(borrow)] BenchRecord<'a>),
    /// `5`: Answer to `BenchEnd`.
    BenchSummary(BenchSummary),
    /// `6`: The request with sequence number `seq` failed; nothing changed
    /// unless the code says so.
    Error {
        /// Sequence number of the failed frame (for a frame too damaged to
        /// read one: the last good sequence number).
        seq: u32,
        /// What went wrong.
        code: ErrorCode,
        /// Code-specific number (see [`ErrorCode`]), 0 when none.
        detail: u32,
    },
}

/// Identity and capacities of a device, sent in [`DeviceMsg::DeviceHello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceInfo<'a> {
    /// The device's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION). First
    /// field in every version.
    pub protocol_version: u16,
    /// Version of the inference engine (the plan format it runs).
    pub engine_version: u16,
    /// Board name, e.g. `"mps2-an386"`, `"rpi5"`.
    pub board: &'a str,
    /// Core, e.g. `"cortex-m4f"`, `"cortex-a76"`.
    pub core: &'a str,
    /// Core clock.
    pub clock_hz: u32,
    /// RAM (u64: Linux boards have more than 4 GiB).
    pub ram_bytes: u64,
    /// Flash or storage.
    pub flash_bytes: u64,
    /// Capacity of one plan slot: the largest plan image accepted.
    pub plan_slot_bytes: u32,
    /// Number of plan slots (2 for A/B).
    pub plan_slots: u8,
    /// Largest tensor arena available to a plan.
    pub arena_bytes: u32,
    /// What measures power, if anything.
    pub power_sensor: PowerSensorKind,
    /// What `ticks` count.
    pub timing: TimingSource,
    /// Ticks per second of [`timing`](Self::timing).
    pub tick_hz: u64,
    /// The plan that would run now.
    pub active_plan: Option<PlanInfo>,
    /// The engines this device has, comma-separated (`"native"`,
    /// `"native,tract-cpu,tract-cuda"`).
    pub engines: &'a str,
    /// The accelerator in use, or why none is (`"cuda: NVIDIA ..."`,
    /// `"none: built without the cuda feature"`); empty on a
    /// microcontroller.
    pub accelerator: &'a str,
}

/// A plan stored on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanInfo {
    /// Plan identifier.
    pub plan_id: u32,
    /// Image size in bytes.
    pub size: u32,
    /// CRC-32/ISO-HDLC of the image.
    pub crc32: u32,
    /// Slot it is stored in.
    pub slot: u8,
}

/// One inference, sent in [`DeviceMsg::Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BenchRecord<'a> {
    /// Sample number.
    pub sample: u32,
    /// Index of the largest output (the predicted class).
    pub predicted: u16,
    /// Inference time in ticks of the device's [`TimingSource`].
    pub ticks: u64,
    /// Raw output tensor bytes, when `BenchStart.want_outputs` (at most
    /// [`MAX_CHUNK`](crate::MAX_CHUNK) bytes).
    #[serde(borrow)]
    pub outputs: Option<&'a [u8]>,
    /// Energy of this inference, when a power sensor is present.
    pub energy_uj: Option<u32>,
}

/// End of a benchmark, sent in [`DeviceMsg::BenchSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BenchSummary {
    /// Plan benchmarked.
    pub plan_id: u32,
    /// Its slot.
    pub slot: u8,
    /// Samples run.
    pub samples: u32,
    /// What the ticks count.
    pub timing: TimingSource,
    /// Ticks per second.
    pub tick_hz: u64,
    /// Core clock during the run.
    pub clock_hz: u32,
    /// Sum of the samples' ticks.
    pub total_ticks: u64,
    /// Fastest sample.
    pub min_ticks: u64,
    /// Slowest sample.
    pub max_ticks: u64,
    /// Arena bytes the plan used.
    pub arena_bytes_used: u32,
    /// Deepest stack seen during the run (0 if not measured).
    pub stack_high_water_bytes: u32,
    /// Power sensor used.
    pub power_sensor: PowerSensorKind,
    /// Total energy of the inferences, if measured.
    pub energy_uj: Option<u64>,
    /// Mean power during inference, if measured.
    pub avg_power_mw: Option<u32>,
    /// Idle power before the run, if measured.
    pub idle_power_mw: Option<u32>,
    /// The engine that ran the samples.
    pub engine: EngineKind,
    /// Peak resident memory of the process during the run (Linux `VmHWM`,
    /// reset at `BenchStart`), if measured.
    pub peak_rss_bytes: Option<u64>,
    /// Accelerator memory held by the model and its run, if one was used.
    pub gpu_memory_bytes: Option<u64>,
}

/// An inference engine of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EngineKind {
    /// `0`: `edgefit-engine` running a plan (bit-exact on every target).
    Native,
    /// `1`: tract on the CPU, running a tract model artifact (f32 or f16).
    TractCpu,
    /// `2`: tract-cuda on an NVIDIA GPU, running a tract model artifact.
    TractCuda,
}

impl EngineKind {
    /// The name used on command lines and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::TractCpu => "tract-cpu",
            Self::TractCuda => "tract-cuda",
        }
    }
}

/// What measures a device's power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PowerSensorKind {
    /// `0`: Nothing: energy fields are `None`.
    None,
    /// `1`: TI INA219 on I²C.
    Ina219,
    /// `2`: TI INA226 on I²C.
    Ina226,
    /// `3`: TI INA3221 (three channels) on I²C.
    Ina3221,
    /// `4`: Raspberry Pi 5 PMIC (`vcgencmd pmic_read_adc`).
    PiPmic,
    /// `5`: Intel/AMD RAPL counters (powercap).
    Rapl,
    /// `6`: A Linux hwmon power or energy input.
    Hwmon,
    /// `7`: An external meter read by the host.
    External,
}

/// What a device's `ticks` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TimingSource {
    /// `0`: Cortex-M DWT cycle counter (tick = core cycle).
    DwtCycles,
    /// `1`: SysTick (tick = its clock).
    SysTick,
    /// `2`: QEMU `-icount` virtual time (deterministic, not real speed).
    QemuIcount,
    /// `3`: A monotonic clock in nanoseconds (Linux `CLOCK_MONOTONIC`).
    MonotonicNs,
}

/// Why a device refused a request, in [`DeviceMsg::Error`]. The `detail`
/// number's meaning is given per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// `0`: A frame was dropped: bad COBS, truncated, too large or undecodable.
    BadFrame,
    /// `1`: A frame failed its CRC. Detail: the CRC computed.
    BadCrc,
    /// `2`: The message is not valid in the current state (e.g. `PlanChunk`
    /// without `PlanBegin`). Detail: the message's variant index.
    UnexpectedMessage,
    /// `3`: The plan exceeds the slot. Detail: slot capacity in bytes.
    PlanTooLarge,
    /// `4`: A chunk is not the next one. Detail: the offset expected.
    ChunkOutOfOrder,
    /// `5`: The received image does not match `PlanBegin.crc32`. Detail: the
    /// CRC computed.
    PlanCrcMismatch,
    /// `6`: No plan is active.
    NoPlan,
    /// `7`: A sample has the wrong size or index. Detail: input bytes expected.
    BadSample,
    /// `8`: The plan needs more arena than the device has. Detail: arena bytes
    /// available.
    ArenaTooSmall,
    /// `9`: The peer speaks another protocol version. Detail: the device's
    /// version.
    VersionMismatch,
    /// `10`: The device is busy (e.g. flash erase in progress): retry.
    Busy,
    /// `11`: The request is not allowed on this device.
    Unauthorized,
    /// `12`: A bug or hardware fault. Detail: device-specific.
    Internal,
    /// `13`: The engine rejected the stored plan (format, version, ops).
    /// Detail: engine error code.
    BadPlan,
    /// `14`: `BenchStart.plan_id` is not the active plan. Detail: active id.
    PlanMismatch,
    /// `15`: Writing the plan slot failed. Detail: device-specific.
    Storage,
    /// `16`: The requested engine is not on this device or cannot run the
    /// active artifact. Detail: the [`EngineKind`] index.
    EngineUnavailable,
}

impl ErrorCode {
    /// A short English description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::BadFrame => "bad frame",
            Self::BadCrc => "frame CRC mismatch",
            Self::UnexpectedMessage => "unexpected message",
            Self::PlanTooLarge => "plan too large for the slot",
            Self::ChunkOutOfOrder => "chunk out of order",
            Self::PlanCrcMismatch => "plan CRC mismatch",
            Self::NoPlan => "no plan stored",
            Self::BadSample => "bad sample",
            Self::ArenaTooSmall => "arena too small for the plan",
            Self::VersionMismatch => "protocol version mismatch",
            Self::Busy => "device busy",
            Self::Unauthorized => "not allowed",
            Self::Internal => "internal device error",
            Self::BadPlan => "plan rejected by the engine",
            Self::PlanMismatch => "another plan is active",
            Self::Storage => "plan storage failed",
            Self::EngineUnavailable => "engine not available for this artifact",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl HostMsg<'_> {
    /// The variant index, as on the wire (for
    /// [`ErrorCode::UnexpectedMessage`]'s detail).
    pub const fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => 0,
            Self::Ping { .. } => 1,
            Self::PlanBegin { .. } => 2,
            Self::PlanChunk { .. } => 3,
            Self::PlanCommit => 4,
            Self::PlanAbort => 5,
            Self::BenchStart { .. } => 6,
            Self::Sample { .. } => 7,
            Self::SampleChunk { .. } => 8,
            Self::SampleRun { .. } => 9,
            Self::BenchEnd => 10,
            Self::Reset => 11,
            Self::Auth { .. } => 12,
        }
    }

    /// `Hello` with this build's protocol version.
    pub const fn hello() -> Self {
        Self::Hello {
            protocol_version: crate::PROTOCOL_VERSION,
        }
    }

    /// `PlanBegin` for a whole plan image (computes its size and CRC).
    ///
    /// Returns `None` if the image is 4 GiB or more.
    pub fn plan_begin(plan_id: u32, image: &[u8]) -> Option<Self> {
        Some(Self::PlanBegin {
            plan_id,
            total_size: u32::try_from(image.len()).ok()?,
            crc32: crate::crc32(image),
        })
    }
}

impl DeviceInfo<'_> {
    /// Refuses a device of another protocol version, with a message that says
    /// which side to update ([`ProtoError::VersionMismatch`](crate::ProtoError)).
    pub fn check_version(&self) -> Result<(), crate::ProtoError> {
        if self.protocol_version == crate::PROTOCOL_VERSION {
            Ok(())
        } else {
            Err(crate::ProtoError::VersionMismatch {
                peer: self.protocol_version,
                local: crate::PROTOCOL_VERSION,
            })
        }
    }
}

impl DeviceMsg<'_> {
    /// An `Error` answer to the frame `seq`.
    pub const fn error(seq: u32, code: ErrorCode, detail: u32) -> Self {
        Self::Error { seq, code, detail }
    }
}

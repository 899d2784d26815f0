//! The edgefit Cortex-M firmware *application*, as a `no_std` library
//! without an allocator. A board crate supplies a byte link
//! ([`embedded_io::Read`] + [`embedded_io::Write`]: a UART), a
//! [`MappedFlash`] for the two plan slots, a [`Clock`], a [`PowerMeter`]
//! and a [`StackMeter`], plus the tensor arena, and calls [`Firmware::run`]:
//!
//! ```ignore
//! let info = BoardInfo { board: "mps2-an386", core: "cortex-m4f", clock_hz: 25_000_000,
//!                        ram_bytes: 4 << 20, flash_bytes: 1 << 20 };
//! let flash = RamFlash::new(PSRAM_SLOTS);          // or the MCU's own flash
//! let mut fw = Firmware::new(info, uart, flash, clock, NoPower, NoStackMeter, ARENA);
//! fw.run()
//! ```
//!
//! The protocol is `docs/protocol.md` (crate `edgefit-proto`): stop-and-wait,
//! every request answered exactly once. The same link also answers the
//! MLPerf Tiny runner (EEMBC ULPMark-ML DUT commands, `%`-terminated text;
//! docs/mlperf-tiny.md): a command switches to it, the host's next frame
//! switches back, and the active plan is the model either way.
//!
//! # Behaviour
//!
//! * **Frames.** Bytes go into a `FrameReader<MAX_FRAME>`. A frame that
//!   cannot be read is answered `Error { seq: <last good seq>, code: BadCrc
//!   (detail: CRC computed) | BadFrame | VersionMismatch (frame of another
//!   protocol version; detail: ours) }` and dropped; garbage never wedges the
//!   device. A request with the same `seq` and kind as the one answered last
//!   is a retransmission: the kept answer is sent again, byte for byte,
//!   without acting twice. Answers to bad frames do not replace the kept
//!   answer.
//! * **States.** Idle, uploading (after `PlanBegin`), benchmarking (after
//!   `BenchStart`). `Hello`, `Ping`, `PlanAbort`, `Reset`, `PlanBegin` and
//!   `BenchStart` are accepted in every state; `PlanBegin` drops a benchmark
//!   or upload in progress, an accepted `BenchStart` drops an upload (a new
//!   host session may start anything). `PlanChunk`/`PlanCommit` outside an
//!   upload and `Sample`/`SampleChunk`/`SampleRun`/`BenchEnd` outside a
//!   benchmark are `UnexpectedMessage` (detail: the message's kind).
//!   `BenchStart.samples` is informative; sample indices are echoed, not
//!   checked for order.
//! * **Plans** go to the inactive slot (see [`slots`](crate#plan-slots)).
//!   `PlanCommit` answers `ChunkOutOfOrder` while bytes are missing (the
//!   upload stays open), otherwise checks size and CRC, re-reads the image
//!   from flash, parses it with the engine and checks its arena; only then it
//!   writes the slot record that activates it. Any failure leaves the
//!   previous plan active.
//! * **Benchmarks.** `Sample` must carry exactly the plan's input tensor
//!   bytes (else `BadSample`, detail: those bytes); `SampleChunk`s (from
//!   offset 0, which starts a new sample) and `SampleRun` assemble a larger
//!   one straight into the input tensor in the arena. Each inference is timed
//!   with [`Clock::now`] right around `Engine::run`; power (if the meter's
//!   kind is not `None`) is read just before and after, and the energy is
//!   their mean × the time. `predicted` is the arg-max of the output tensor
//!   by its dtype (ties: lowest index; see [`argmax`]). `outputs` is sent
//!   when asked for and at most `MAX_CHUNK` bytes (else `None`).
//!
//! # Error details
//!
//! * `BadPlan`: [`plan_error_code`] — 1 + the `edgefit_engine::PlanError`
//!   variant's position: 1 Truncated, 2 BadMagic, 3 UnsupportedVersion,
//!   4 UnknownFlags, 5 BadHeaderSize, 6 CrcMismatch, 7 ReservedNotZero,
//!   8 BadEnum, 9 BadSection, 10 BadRank, 11 BadDims, 12 TensorLengthMismatch,
//!   13 TensorOutOfBounds, 14 TensorMisaligned, 15 BadZeroPoint,
//!   16 TensorIndex, 17 WrongDType, 18 WrongLocation, 19 Shape,
//!   20 ShapeMismatch, 21 BadParam, 22 BadArray, 23 Overlap, 24 Unsupported,
//!   25 BadSparse.
//! * `Storage`: [`storage_detail`] (flash error kind, read-back failures).
//! * `Internal`: [`internal_detail`].
//!
//! # Plan slots
//!
//! The whole flash device is split into two equal halves, each rounded down
//! to whole erase sectors. A slot holds the plan image from its first byte
//! and a 32-byte slot record in its last `max(32, WRITE_SIZE)` bytes, so
//! `DeviceInfo::plan_slot_bytes` = slot size − 32 (with `WRITE_SIZE` ≤ 32):
//!
//! ```text
//! record (LE): "EFSR" | format=1 | generation | plan_id | size | crc32 | 0 | crc32(previous 28 bytes)
//! ```
//!
//! `PlanBegin` erases the record's sector first, then the sectors the image
//! needs; the record is written last, after verification, with generation =
//! the active slot's + 1. At boot ([`Firmware::new`]) the slot whose record
//! checksum, image CRC and `Plan::parse` are all good, with the highest
//! generation, is active. A dropped link, `PlanAbort`, a bad chunk, a failed
//! commit or a reset mid-upload therefore leave the old plan active.
//!
//! Flash requirements (checked at compile time): `1 <= WRITE_SIZE <= 64`,
//! `ERASE_SIZE` a multiple of `WRITE_SIZE`. Images are written in
//! `WRITE_SIZE` units, each word once, never twice (ECC flash is fine).
//!
//! # RAM
//!
//! [`Firmware`] holds two `MAX_FRAME` (2131-byte) buffers — the receive frame
//! and the last answer (kept for retransmissions) — a 64-byte read staging
//! buffer, the 80-byte MLPerf Tiny command buffer and about 300 bytes of
//! state: about 4.8 KiB, plus the board's
//! link/flash/clock/power/stack values and the caller's arena. Answering a
//! bad frame uses a 48-byte stack buffer. The plan is read in place from the
//! flash mapping (zero copy); samples are copied straight into the arena.
//!
//! # Notes for board crates
//!
//! * [`Firmware::poll`] returns `Ok(())` when `read` returns 0 bytes, and
//!   during a benchmark serves frames until it ends (see its docs);
//!   [`Firmware::run`] loops on it forever.
//! * The `Firmware` value is ~4.8 KiB: give `main` enough stack, or put it
//!   in a `static` cell.
//! * `Clock::now` must be monotonic over one inference; `ticks` is
//!   `t1.wrapping_sub(t0)`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod diag;

mod bench;
mod dut;
mod firmware;
mod flash;
mod slots;

pub use crate::firmware::Firmware;
/// Longest MLPerf Tiny DUT command (bytes before the `%`).
pub use crate::firmware::COMMAND_MAX;
pub use crate::flash::{MappedFlash, RamFlash};
pub use crate::slots::{plan_error_code, storage_detail, MAX_WRITE_SIZE, RECORD_LEN};
/// Re-exported: the firmware's `Record.predicted`.
pub use edgefit_engine::argmax;
pub use edgefit_proto::internal_detail;

use edgefit_proto::{PowerSensorKind, TimingSource};

/// What the board is, for `DeviceHello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardInfo {
    /// Board name, e.g. `"mps2-an386"`.
    pub board: &'static str,
    /// Core, e.g. `"cortex-m4f"`.
    pub core: &'static str,
    /// Core clock.
    pub clock_hz: u32,
    /// RAM.
    pub ram_bytes: u64,
    /// Flash.
    pub flash_bytes: u64,
}

/// The time base of inference timings.
pub trait Clock {
    /// The current tick count (monotonic over one inference).
    fn now(&mut self) -> u64;
    /// Ticks per second.
    fn tick_hz(&self) -> u64;
    /// What the ticks count.
    fn source(&self) -> TimingSource;
}

/// A power sensor.
pub trait PowerMeter {
    /// The kind of sensor ([`PowerSensorKind::None`]: not read at all).
    fn kind(&self) -> PowerSensorKind;
    /// Instantaneous power, `None` if unreadable.
    fn read_power_mw(&mut self) -> Option<u32>;
}

/// No power sensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPower;

impl PowerMeter for NoPower {
    fn kind(&self) -> PowerSensorKind {
        PowerSensorKind::None
    }

    fn read_power_mw(&mut self) -> Option<u32> {
        None
    }
}

/// A power monitor driven by `edgefit-sensors` (INA219, INA226 on I2C) as
/// the firmware's [`PowerMeter`]: a board with one fitted wraps its driver,
/// configured and calibrated, in this.
#[derive(Debug)]
pub struct SensorPower<S>(pub S);

impl<S: edgefit_sensors::PowerSensor> PowerMeter for SensorPower<S> {
    fn kind(&self) -> PowerSensorKind {
        match self.0.name() {
            "INA219" => PowerSensorKind::Ina219,
            "INA226" => PowerSensorKind::Ina226,
            _ => PowerSensorKind::External,
        }
    }

    /// The chip's power register, rounded to mW; a bus error reads as
    /// `None` (the record then carries no energy, never a guess).
    fn read_power_mw(&mut self) -> Option<u32> {
        let r = self.0.read().ok()?;
        Some(r.power_microwatts.saturating_add(500) / 1000)
    }
}

/// How MLPerf Tiny DUT mode marks time (`timestamp`, and the two laps
/// around `infer`'s timed loop): `m-lap-us-<µs>` lines in performance mode
/// ([`LapTimestamps`]); a GPIO pulled low then high for an energy monitor's
/// interface board in energy mode ([`TimestampPin`]).
pub trait Timestamp {
    /// Energy mode: the pin marks time (lines are printed outside the window).
    fn energy(&self) -> bool;
    /// Pulls the timestamp pin low (energy mode).
    fn set_low(&mut self);
    /// Releases the timestamp pin (energy mode).
    fn set_high(&mut self);
}

/// Performance mode: timestamps are `m-lap-us-<µs>` lines from the [`Clock`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LapTimestamps;

impl Timestamp for LapTimestamps {
    fn energy(&self) -> bool {
        false
    }
    fn set_low(&mut self) {}
    fn set_high(&mut self) {}
}

/// Energy mode: an output pin wired to the interface board's timestamp
/// input (open drain or push-pull, idle high). A pin error is ignored: the
/// run goes on and the missing edge shows in the runner's energy log.
#[derive(Debug)]
pub struct TimestampPin<P>(pub P);

impl<P: embedded_hal::digital::OutputPin> Timestamp for TimestampPin<P> {
    fn energy(&self) -> bool {
        true
    }
    fn set_low(&mut self) {
        let _ = self.0.set_low();
    }
    fn set_high(&mut self) {
        let _ = self.0.set_high();
    }
}

/// Stack depth measurement (e.g. by painting the unused stack).
pub trait StackMeter {
    /// Paints the unused stack (at `BenchStart`).
    fn repaint(&mut self);
    /// Deepest use since the last repaint, in bytes (at `BenchEnd`).
    fn high_water_bytes(&self) -> u32;
}

/// No stack measurement: reports 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoStackMeter;

impl StackMeter for NoStackMeter {
    fn repaint(&mut self) {}

    fn high_water_bytes(&self) -> u32 {
        0
    }
}

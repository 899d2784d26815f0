//! MLPerf Tiny DUT mode: the EEMBC ULPMark-ML command set that the official
//! runner (mlcommons/tiny, `benchmark/runner`) and its energy rig speak, over
//! the same link as edgefit's frames (the switch is in `firmware::Rx`).
//!
//! Commands end with `%`, answers are lines ending `\r\n`, and every command
//! is answered last by `m-ready`. The active plan is the model: `db load N`
//! and `db HH..` fill a byte buffer with the raw uint8 image (in the input
//! tensor's element order, HWC for an image), and `infer N W` maps it once
//! through the plan's recorded recipe ([`edgefit_engine::input`]: the same
//! arithmetic the host applies) into a staged input tensor, then runs W
//! warm-up and N timed inferences, each copying the staged input into the
//! arena first (the engine may reuse the input's memory). See
//! docs/mlperf-tiny.md.
//!
//! The raw buffer and the staged input live in the arena after the plan's
//! own `arena_size`: DUT mode costs no RAM beyond a few words of state, and
//! `db load` says how many bytes are free when the image does not fit.

use core::fmt;

use edgefit_engine::input::InputRecipe;
use edgefit_engine::kernels::softmax::exp_f32;
use edgefit_engine::{DType, Engine, OpKind, Plan, TensorDesc};

use crate::firmware::Core;
use crate::slots::Store;
use crate::{Clock, MappedFlash, PowerMeter, StackMeter, Timestamp};

/// `m-profile-[...]`: the ULPMark firmware version the runner expects, then ours.
const PROFILE: &str = concat!(
    "ULPMark for tinyML Firmware V0.0.1 (edgefit ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// The model version announced by `profile` (the runner picks its test and
/// dataset folder by it): any image classifier runs the `ic01` scripts.
const MODEL: &str = "ic01";

/// How long the timestamp pin is held low in energy mode (the reference DUT
/// holds it for 100,000 `nop` loop iterations; its length in time was not
/// measured here, 1 ms is ample for an interrupt-driven edge detector).
const PULSE_US: u64 = 1000;

/// DUT-mode state: the byte buffer's bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Dut {
    /// Bytes announced by `db load`.
    expected: usize,
    /// Bytes received since.
    loaded: usize,
    /// Where the buffer starts in the arena (the plan's `arena_size` when
    /// `db load` came). The plan cannot change in DUT mode: flashing one
    /// leaves it.
    base: usize,
    /// An inference ran since the buffer was loaded: `results` has output.
    ran: bool,
}

/// One answer line: `args` then `\r\n`. Formatting into the link cannot
/// fail other than by the link's own error.
fn line<L: embedded_io::Write>(link: &mut L, args: fmt::Arguments<'_>) -> Result<(), L::Error> {
    use embedded_io::WriteFmtError;
    match link.write_fmt(args) {
        Ok(()) | Err(WriteFmtError::FmtError) => {}
        Err(WriteFmtError::Other(e)) => return Err(e),
    }
    link.write_all(b"\r\n")
}

macro_rules! say {
    ($link:expr, $($arg:tt)*) => { line($link, format_args!($($arg)*)) };
}

/// An `e-[...]` answer's text.
struct Refusal(&'static str);

/// Parses a decimal count the way the runner writes them (no sign, no
/// spaces); `None` for anything else.
fn count(token: &str) -> Option<usize> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Microseconds of `ticks` at `hz` (0 Hz reads as 0).
fn micros(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(hz)).unwrap_or(u64::MAX)
}

impl Dut {
    /// Answers one command. `entered`: the link just switched from edgefit's
    /// frames (a new runner session): the buffer is reset and the start-up
    /// lines a DUT prints at boot come first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn command<L, F, C, P, S, T>(
        &mut self,
        link: &mut L,
        text: &[u8],
        overflow: bool,
        entered: bool,
        store: &Store<F>,
        core: &mut Core<'_, C, P, S>,
        stamp: &mut T,
    ) -> Result<(), L::Error>
    where
        L: embedded_io::Write,
        F: MappedFlash,
        C: Clock,
        P: PowerMeter,
        S: StackMeter,
        T: Timestamp,
    {
        if entered {
            *self = Dut::default();
            let mode = if stamp.energy() {
                "energy"
            } else {
                "performance"
            };
            say!(link, "m-timestamp-mode-{mode}")?;
            say!(link, "m-init-done")?;
        }
        // Printable ASCII only reaches here (see `firmware::Rx`).
        let text = core::str::from_utf8(text).unwrap_or("");
        let mut tokens = text.split(' ').filter(|t| !t.is_empty());
        let first = tokens.next().unwrap_or("");
        if overflow {
            say!(
                link,
                "e-[Command longer than {} bytes: {first}...]",
                crate::firmware::COMMAND_MAX
            )?;
        } else {
            match first {
                "name" => say!(link, "m-name-dut-[edgefit-{}]", core.info.board)?,
                "profile" => {
                    say!(link, "m-profile-[{PROFILE}]")?;
                    say!(link, "m-model-[{MODEL}]")?;
                }
                "help" => help(link)?,
                "timestamp" => timestamp(link, core, stamp)?,
                "db" => self.db(link, &mut tokens, store, core)?,
                "infer" => self.infer(link, &mut tokens, store, core, stamp)?,
                "results" => self.results(link, store, core)?,
                "" => say!(link, "e-[Empty command]")?,
                other => say!(link, "e-[Unknown command: {other}]")?,
            }
        }
        say!(link, "m-ready")
    }

    fn db<'t, L, F, C, P, S>(
        &mut self,
        link: &mut L,
        tokens: &mut impl Iterator<Item = &'t str>,
        store: &Store<F>,
        core: &mut Core<'_, C, P, S>,
    ) -> Result<(), L::Error>
    where
        L: embedded_io::Write,
        F: MappedFlash,
    {
        match tokens.next() {
            None => say!(link, "e-[Command 'db' requires a subcommand]"),
            Some("load") => {
                let Some(n) = tokens.next() else {
                    return say!(link, "e-[Command 'db load' requires the # of bytes]");
                };
                let Some(n) = count(n).filter(|&n| n > 0) else {
                    return say!(link, "e-[Command 'db load' must be >0 bytes, got '{n}']");
                };
                self.load(link, n, store, core.arena.len())
            }
            Some("print") => {
                let n = tokens.next().map_or(Some(16), count);
                let offset = tokens.next().map_or(Some(0), count);
                let (Some(n), Some(offset)) = (n, offset) else {
                    return say!(link, "e-[Usage: db print [N=16] [offset=0]]");
                };
                self.print(link, n, offset, core.arena)
            }
            Some(hex) => {
                if tokens.next().is_some() {
                    return say!(link, "e-[Command 'db' takes one run of hex digits]");
                }
                self.hex(link, hex.as_bytes(), core.arena)
            }
        }
    }

    fn load<L: embedded_io::Write, F: MappedFlash>(
        &mut self,
        link: &mut L,
        n: usize,
        store: &Store<F>,
        arena_len: usize,
    ) -> Result<(), L::Error> {
        *self = Dut::default();
        let Ok((_, plan)) = store.plan() else {
            return say!(link, "e-[No plan is active: flash one with edgefit flash]");
        };
        let base = plan.arena_size();
        let staged = plan.input().map_or(0, |t| t.length as usize);
        let free = arena_len.saturating_sub(base).saturating_sub(staged);
        if n > free {
            return say!(
                link,
                "e-[{n} bytes do not fit: {free} bytes of the arena are free beside the plan]"
            );
        }
        self.expected = n;
        self.base = base;
        say!(link, "m-[Expecting {n} bytes]")
    }

    fn hex<L: embedded_io::Write>(
        &mut self,
        link: &mut L,
        digits: &[u8],
        arena: &mut [u8],
    ) -> Result<(), L::Error> {
        if self.expected == 0 {
            return say!(link, "e-[No buffer: send db load N first]");
        }
        if !digits.len().is_multiple_of(2) {
            // The reference firmware's wording.
            return say!(link, "e-[Insufficent number of hex digits]");
        }
        if let Some(bad) = digits
            .chunks(2)
            .find(|p| p.iter().any(|&b| hex_value(b).is_none()))
        {
            let pair = core::str::from_utf8(bad).unwrap_or("??");
            return say!(link, "e-[Invalid hex digit '{pair}']");
        }
        let n = digits.len() / 2;
        let room = self.expected - self.loaded;
        if n > room {
            return say!(
                link,
                "e-[{n} bytes sent but {room} of {} expected: nothing loaded]",
                self.expected
            );
        }
        let start = self.base + self.loaded;
        let Some(dst) = arena.get_mut(start..start + n) else {
            return say!(link, "e-[Buffer outside the arena]");
        };
        for (d, p) in dst.iter_mut().zip(digits.chunks(2)) {
            *d = (hex_value(p[0]).unwrap_or(0) << 4) | hex_value(p[1]).unwrap_or(0);
        }
        self.loaded += n;
        self.ran = false;
        if self.loaded == self.expected {
            say!(link, "m-load-done")?;
        }
        Ok(())
    }

    fn print<L: embedded_io::Write>(
        &self,
        link: &mut L,
        n: usize,
        offset: usize,
        arena: &[u8],
    ) -> Result<(), L::Error> {
        if offset > self.loaded {
            return say!(
                link,
                "e-[Offset {offset} is beyond the {} bytes loaded]",
                self.loaded
            );
        }
        let end = offset.saturating_add(n).min(self.loaded);
        let bytes = arena
            .get(self.base + offset..self.base + end)
            .unwrap_or(&[]);
        for row in bytes.chunks(8) {
            link.write_all(b"m-buffer-")?;
            for (i, b) in row.iter().enumerate() {
                let sep = if i + 1 < row.len() { "-" } else { "" };
                embedded_io::Write::write_fmt(link, format_args!("{b:02x}{sep}")).ok();
            }
            link.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn infer<'t, L, F, C, P, S, T>(
        &mut self,
        link: &mut L,
        tokens: &mut impl Iterator<Item = &'t str>,
        store: &Store<F>,
        core: &mut Core<'_, C, P, S>,
        stamp: &mut T,
    ) -> Result<(), L::Error>
    where
        L: embedded_io::Write,
        F: MappedFlash,
        C: Clock,
        T: Timestamp,
    {
        // The reference's defaults: one inference after ten warm-ups.
        let n = tokens.next().map_or(Some(1), count);
        let w = tokens.next().map_or(Some(10), count);
        let Some(n) = n.filter(|&n| n > 0) else {
            return say!(link, "e-[Inference iterations must be >0]");
        };
        let Some(w) = w else {
            return say!(link, "e-[Inference warmup must be >=0]");
        };
        let Ok((_, plan)) = store.plan() else {
            return say!(link, "e-[No plan is active: flash one with edgefit flash]");
        };
        if let Ok(input) = plan.input() {
            let elems = input.shape().iter().map(|&d| d as usize).product::<usize>();
            if self.expected != 0 && self.loaded == self.expected && self.loaded != elems {
                return say!(
                    link,
                    "e-[The buffer holds {} bytes but the plan's input takes {elems}, one per element]",
                    self.loaded
                );
            }
        }
        let engine = Engine::new(&plan);
        let (input, staged_at) = match self.stage(&plan, core.arena) {
            Ok(v) => v,
            Err(Refusal(why)) => return say!(link, "e-[{why}]"),
        };
        let (work, tail) = core.arena.split_at_mut(self.base);
        let staged = &tail[staged_at..staged_at + input.length as usize];
        let run = |work: &mut [u8]| -> Result<(), ()> {
            engine
                .input_mut(work)
                .map_err(|_| ())?
                .copy_from_slice(staged);
            engine.run(work).map_err(|_| ())
        };
        say!(link, "m-warmup-start-{w}")?;
        for _ in 0..w {
            if run(work).is_err() {
                return say!(link, "e-[Inference failed]");
            }
        }
        say!(link, "m-warmup-done")?;
        say!(link, "m-infer-start-{n}")?;
        lap(link, &mut core.clock, stamp, true)?;
        let mut failed = false;
        for _ in 0..n {
            failed |= run(work).is_err();
            // Keeps a 32-bit counter's software extension current on long runs.
            core.clock.now();
        }
        lap(link, &mut core.clock, stamp, false)?;
        if failed {
            return say!(link, "e-[Inference failed]");
        }
        say!(link, "m-infer-done")?;
        self.ran = true;
        results(link, &engine, work)
    }

    /// Maps the raw buffer through the plan's recipe into the staged input
    /// (after the raw bytes); returns the input tensor and where the staged
    /// copy starts, relative to the buffer.
    fn stage(&self, plan: &Plan<'_>, arena: &mut [u8]) -> Result<(TensorDesc, usize), Refusal> {
        let input = plan
            .input()
            .map_err(|_| Refusal("The plan's input cannot be read"))?;
        if self.expected == 0 || self.loaded < self.expected {
            return Err(Refusal(
                "No complete input: send db load N and N bytes first",
            ));
        }
        if plan.arena_size() != self.base {
            return Err(Refusal("The plan changed: db load again"));
        }
        let recipe = InputRecipe::from_metadata(plan.metadata())
            .map_err(|_| Refusal("The plan's recorded recipe cannot be read"))?;
        let tail = arena
            .get_mut(self.base..)
            .ok_or(Refusal("Buffer outside the arena"))?;
        let (raw, rest) = tail.split_at_mut(self.loaded);
        let staged = rest
            .get_mut(..input.length as usize)
            .ok_or(Refusal("No room for the staged input"))?;
        recipe
            .encode(raw, &input, staged)
            .map_err(|_| Refusal("The plan's recipe does not fit its input (channels or type)"))?;
        Ok((input, self.loaded))
    }

    fn results<L, F, C, P, S>(
        &self,
        link: &mut L,
        store: &Store<F>,
        core: &mut Core<'_, C, P, S>,
    ) -> Result<(), L::Error>
    where
        L: embedded_io::Write,
        F: MappedFlash,
    {
        if !self.ran {
            return say!(link, "e-[No inference has run on this buffer]");
        }
        let Ok((_, plan)) = store.plan() else {
            return say!(link, "e-[No plan is active: flash one with edgefit flash]");
        };
        let engine = Engine::new(&plan);
        let work = core.arena.get(..self.base).unwrap_or(&[]);
        results(link, &engine, work)
    }
}

/// `m-lap-us-<µs>` in performance mode; in energy mode the timestamp pin's
/// falling edge, with the line printed outside the measured window (before
/// the first edge, after the last), so no UART traffic is measured.
fn lap<L, C, T>(link: &mut L, clock: &mut C, stamp: &mut T, first: bool) -> Result<(), L::Error>
where
    L: embedded_io::Write,
    C: Clock,
    T: Timestamp,
{
    if !stamp.energy() {
        let us = micros(clock.now(), clock.tick_hz());
        return say!(link, "m-lap-us-{us}");
    }
    if first {
        let us = micros(clock.now(), clock.tick_hz());
        say!(link, "m-lap-us-{us}")?;
        link.flush()?;
        pulse(clock, stamp);
        Ok(())
    } else {
        pulse(clock, stamp);
        let us = micros(clock.now(), clock.tick_hz());
        say!(link, "m-lap-us-{us}")
    }
}

/// The timestamp pin low for [`PULSE_US`], then high.
fn pulse<C: Clock, T: Timestamp>(clock: &mut C, stamp: &mut T) {
    stamp.set_low();
    let hold = clock.tick_hz().saturating_mul(PULSE_US) / 1_000_000;
    let t0 = clock.now();
    while clock.now().wrapping_sub(t0) < hold {
        core::hint::spin_loop();
    }
    stamp.set_high();
}

/// `timestamp`: one lap (or edge).
fn timestamp<L, C, P, S, T>(
    link: &mut L,
    core: &mut Core<'_, C, P, S>,
    stamp: &mut T,
) -> Result<(), L::Error>
where
    L: embedded_io::Write,
    C: Clock,
    T: Timestamp,
{
    if stamp.energy() {
        pulse(&mut core.clock, stamp);
        Ok(())
    } else {
        lap(link, &mut core.clock, stamp, true)
    }
}

/// `m-results-[p0,p1,...]`: class probabilities with three decimals. The
/// output tensor is dequantised with the plan's output parameters; when the
/// model ends in a softmax (plans keep it) those are the probabilities,
/// otherwise the device takes the softmax of the dequantised logits in f32
/// (the engine's own `exp_f32`, as its f32 softmax kernel)
/// — the runner needs probabilities (it divides each result by its sum and
/// scores AUC), and the arg-max, hence top-1, is the logits' either way.
fn results<L: embedded_io::Write>(
    link: &mut L,
    engine: &Engine<'_>,
    work: &[u8],
) -> Result<(), L::Error> {
    let (Ok(out), Ok(desc)) = (engine.output(work), engine.plan().output()) else {
        return say!(link, "e-[The plan's output cannot be read]");
    };
    let plan = engine.plan();
    let ends_in_softmax = plan
        .op_count()
        .checked_sub(1)
        .and_then(|last| plan.op(last as u32).ok())
        .is_some_and(|op| op.kind == OpKind::Softmax);
    let q = desc.quant;
    let value = |i: usize| -> f32 {
        match desc.dtype {
            DType::I8 => (i32::from(out[i] as i8) - q.zero_point) as f32 * q.scale,
            DType::F32 => {
                f32::from_le_bytes([out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3]])
            }
            DType::F16 => half::f16::from_le_bytes([out[2 * i], out[2 * i + 1]]).to_f32(),
            _ => 0.0,
        }
    };
    let n = match desc.dtype {
        DType::I8 => out.len(),
        DType::F32 => out.len() / 4,
        DType::F16 => out.len() / 2,
        _ => 0,
    };
    // Softmax of logits: exp(x - max) / sum, in two passes (no buffer).
    let (max, sum) = if ends_in_softmax {
        (0.0, 1.0)
    } else {
        let max = (0..n).map(value).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..n).map(|i| exp_f32(value(i) - max)).sum();
        (max, sum)
    };
    link.write_all(b"m-results-[")?;
    for i in 0..n {
        let v = if ends_in_softmax {
            value(i)
        } else {
            exp_f32(value(i) - max) / sum
        };
        if i > 0 {
            link.write_all(b",")?;
        }
        link.write_all(fixed3(v, &mut [0u8; 48]))?;
    }
    link.write_all(b"]\r\n")
}

/// `v` with three decimals, as `format!("{v:.3}")` and C's `%0.3f` write
/// it (the exact binary value rounded half to even; `-0.000` for negatives
/// that round to zero), without `core`'s float formatting (about 15 KB of
/// Cortex-M flash). `v * 1000` is exact in f64 (24 + 10 significant bits).
/// `buf` holds the longest: `-` and 39 digits, `.`, three decimals.
fn fixed3(v: f32, buf: &mut [u8; 48]) -> &[u8] {
    if v.is_nan() {
        return b"NaN";
    }
    if v.is_infinite() {
        return if v < 0.0 { b"-inf" } else { b"inf" };
    }
    let negative = v.is_sign_negative();
    let a = if negative { -v } else { v };
    let mut at = buf.len();
    let mut put = |b: u8, at: &mut usize| {
        *at -= 1;
        buf[*at] = b;
    };
    if a >= 16_777_216.0 {
        // At or above 2^24 every f32 is an integer, m * 2^e: decimal digits
        // of m, doubled e times (at most 39 digits; no 128-bit division).
        let bits = a.to_bits();
        let mut digits = [0u8; 40]; // least significant first
        let mut len = 0;
        let mut m = (bits & 0x7f_ffff) | 0x80_0000;
        while m > 0 {
            digits[len] = (m % 10) as u8;
            m /= 10;
            len += 1;
        }
        for _ in 0..((bits >> 23) as i32 - 150) {
            let mut carry = 0;
            for d in digits.iter_mut().take(len) {
                let x = *d * 2 + carry;
                *d = x % 10;
                carry = x / 10;
            }
            if carry > 0 {
                digits[len] = carry;
                len += 1;
            }
        }
        for _ in 0..3 {
            put(b'0', &mut at);
        }
        put(b'.', &mut at);
        for &d in &digits[..len] {
            put(b'0' + d, &mut at);
        }
    } else {
        let scaled = f64::from(a) * 1000.0;
        let mut k = scaled as u64; // truncates; exact below 2^53
        let rest = scaled - k as f64;
        if rest > 0.5 || (rest == 0.5 && k % 2 == 1) {
            k += 1;
        }
        let (mut int, mut frac) = (k / 1000, k % 1000);
        for _ in 0..3 {
            put(b'0' + (frac % 10) as u8, &mut at);
            frac /= 10;
        }
        put(b'.', &mut at);
        loop {
            put(b'0' + (int % 10) as u8, &mut at);
            int /= 10;
            if int == 0 {
                break;
            }
        }
    }
    if negative {
        put(b'-', &mut at);
    }
    &buf[at..]
}

fn help<L: embedded_io::Write>(link: &mut L) -> Result<(), L::Error> {
    for l in [
        PROFILE,
        "",
        "help         : Print this information",
        "name         : Print the name of the device",
        "timestamp    : Generate a timestamp",
        "db SUBCMD    : Manipulate a generic byte buffer",
        "  load N     : Allocate N bytes and set load counter",
        "  db HH[HH]* : Load 8-bit hex byte(s) until N bytes",
        "  print [N=16] [offset=0]",
        "             : Print N bytes at offset as hex",
        "infer N [W=10]: Load input, execute N inferences after W warmup loops",
        "results      : Return the result fp32 vector",
        "A 0x00 byte (edgefit's frame delimiter) returns to edgefit's protocol.",
    ] {
        say!(link, "{l}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fixed3;

    #[test]
    fn fixed3_writes_what_format_writes() {
        let mut x = 0x2545_f491u32;
        let mut values = vec![
            0.0f32,
            -0.0,
            0.0625,
            0.0005,
            1.0625,
            -1.0625,
            2.5e-3,
            0.9995,
            999.9995,
            1e-7,
            -1e-7,
            16_777_216.0,
            3.4e38,
            -3.4e38,
            123.456,
        ];
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push(match i % 3 {
                0 => f32::from_bits(x),
                1 => (x % 2_000_000) as f32 / 1024.0 - 900.0, // exact binary fractions, ties
                _ => x as f32 / u32::MAX as f32,              // probabilities
            });
        }
        for v in values {
            let want = format!("{v:.3}");
            let got = std::str::from_utf8(fixed3(v, &mut [0; 48]))
                .unwrap()
                .to_owned();
            assert_eq!(got, want, "{v:e}");
        }
    }
}

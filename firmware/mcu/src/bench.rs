//! Benchmark state and arithmetic: arg-max by dtype, energy, statistics.

use edgefit_engine::DType;
use edgefit_proto::Transfer;

/// A sample arriving in `SampleChunk`s.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub index: u32,
    pub xfer: Transfer,
}

/// A benchmark in progress.
#[derive(Debug, Clone)]
pub(crate) struct Bench {
    pub plan_id: u32,
    pub slot: u8,
    pub want_outputs: bool,
    /// Bytes of the plan's input tensor.
    pub input_len: u32,
    /// The plan's arena size (activations + scratch).
    pub arena_used: u32,
    pub idle_power_mw: Option<u32>,
    pub samples: u32,
    pub total_ticks: u64,
    pub min_ticks: u64,
    pub max_ticks: u64,
    /// Energy of the samples whose power could be read, and their ticks.
    pub energy_uj: u64,
    pub energy_ticks: u64,
    pub energy_measured: bool,
    pub part: Option<Part>,
}

impl Bench {
    pub(crate) fn new(
        plan_id: u32,
        slot: u8,
        want_outputs: bool,
        input_len: u32,
        arena_used: u32,
    ) -> Self {
        Self {
            plan_id,
            slot,
            want_outputs,
            input_len,
            arena_used,
            idle_power_mw: None,
            samples: 0,
            total_ticks: 0,
            min_ticks: 0,
            max_ticks: 0,
            energy_uj: 0,
            energy_ticks: 0,
            energy_measured: false,
            part: None,
        }
    }

    /// Adds one inference.
    pub(crate) fn record(&mut self, ticks: u64, energy_uj: Option<u32>) {
        if self.samples == 0 {
            self.min_ticks = ticks;
            self.max_ticks = ticks;
        } else {
            self.min_ticks = self.min_ticks.min(ticks);
            self.max_ticks = self.max_ticks.max(ticks);
        }
        self.samples = self.samples.saturating_add(1);
        self.total_ticks = self.total_ticks.saturating_add(ticks);
        if let Some(e) = energy_uj {
            self.energy_measured = true;
            self.energy_uj = self.energy_uj.saturating_add(u64::from(e));
            self.energy_ticks = self.energy_ticks.saturating_add(ticks);
        }
    }

    /// Mean power over the measured samples: energy / time.
    pub(crate) fn avg_power_mw(&self, tick_hz: u64) -> Option<u32> {
        if !self.energy_measured || self.energy_ticks == 0 {
            return None;
        }
        // mW = µJ / 1000 / (ticks / tick_hz)
        let mw = u128::from(self.energy_uj) * u128::from(tick_hz)
            / (u128::from(self.energy_ticks) * 1000);
        Some(u32::try_from(mw).unwrap_or(u32::MAX))
    }
}

/// Energy of an inference of `ticks` at `power_mw`: mW × s × 1000 = µJ.
pub(crate) fn energy_uj(power_mw: u32, ticks: u64, tick_hz: u64) -> Option<u32> {
    if tick_hz == 0 {
        return None;
    }
    let uj = u128::from(power_mw) * u128::from(ticks) * 1000 / u128::from(tick_hz);
    Some(u32::try_from(uj).unwrap_or(u32::MAX))
}

/// Mean of the readings that succeeded.
pub(crate) fn mean_power(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(((u64::from(a) + u64::from(b)) / 2) as u32),
        (Some(v), None) | (None, Some(v)) => Some(v),
        (None, None) => None,
    }
}

/// Index of the largest element of an output tensor of `dtype` (int8 as
/// `i8`, int32 as `i32`, f16/f32 as little-endian IEEE); ties go to the
/// lowest index, NaNs never win. 0 for an empty tensor; saturates at
/// `u16::MAX`.
pub fn argmax(bytes: &[u8], dtype: DType) -> u16 {
    let best = match dtype {
        DType::I8 => first_max(bytes.iter().map(|&b| Some(i64::from(b as i8)))),
        DType::I32 => first_max(
            bytes
                .chunks_exact(4)
                .map(|c| Some(i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
        ),
        DType::F16 => first_max(
            bytes
                .chunks_exact(2)
                .map(|c| f16_key(u16::from_le_bytes([c[0], c[1]]))),
        ),
        DType::F32 => first_max(
            bytes
                .chunks_exact(4)
                .map(|c| f32_key(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        ),
    };
    u16::try_from(best).unwrap_or(u16::MAX)
}

/// Position of the first greatest `Some`.
fn first_max(keys: impl Iterator<Item = Option<i64>>) -> usize {
    let mut best: Option<(usize, i64)> = None;
    for (i, k) in keys.enumerate() {
        if let Some(k) = k {
            if best.is_none_or(|(_, b)| k > b) {
                best = Some((i, k));
            }
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// An integer with the order of the IEEE value (sign-magnitude to two's
/// complement; -0 and +0 equal); `None` for NaN.
fn ieee_key(bits: u64, sign_bit: u32, inf_bits: u64) -> Option<i64> {
    let mag = bits & ((1u64 << sign_bit) - 1);
    if mag > inf_bits {
        return None;
    }
    let mag = mag as i64;
    Some(if bits >> sign_bit != 0 { -mag } else { mag })
}

fn f16_key(bits: u16) -> Option<i64> {
    ieee_key(u64::from(bits), 15, 0x7C00)
}

fn f32_key(bits: u32) -> Option<i64> {
    ieee_key(u64::from(bits), 31, 0x7F80_0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn argmax_by_dtype() {
        assert_eq!(argmax(&[0x80, 0x7F, 0x05], DType::I8), 1);
        assert_eq!(argmax(&[0xFF, 0xFE, 0x80], DType::I8), 0); // -1 > -2 > -128
        assert_eq!(argmax(&[3, 7, 7, 1], DType::I8), 1); // tie → lowest
        assert_eq!(argmax(&[], DType::I8), 0);
        assert_eq!(argmax(&f32s(&[-1.5, -0.5, -3.0]), DType::F32), 1);
        assert_eq!(argmax(&f32s(&[f32::NAN, 0.25, 2.0, 2.0]), DType::F32), 2);
        assert_eq!(argmax(&f32s(&[-0.0, 0.0]), DType::F32), 0);
        assert_eq!(argmax(&f32s(&[1.0, f32::INFINITY, 1e30]), DType::F32), 1);
        let i32s: Vec<u8> = [-5i32, 100, -200]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(argmax(&i32s, DType::I32), 1);
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 2.0 = 0x4000, NaN = 0x7E00
        let h: Vec<u8> = [0x3C00u16, 0xC000, 0x7E00, 0x4000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(argmax(&h, DType::F16), 3);
    }

    #[test]
    fn energy_and_power() {
        // 50 mW for 1 ms = 50 µJ.
        assert_eq!(energy_uj(50, 1_000, 1_000_000), Some(50));
        assert_eq!(energy_uj(50, 1_000, 0), None);
        let mut b = Bench::new(1, 0, false, 4, 16);
        b.record(1_000, Some(50));
        b.record(3_000, Some(150));
        b.record(2_000, None);
        assert_eq!(
            (b.samples, b.total_ticks, b.min_ticks, b.max_ticks),
            (3, 6_000, 1_000, 3_000)
        );
        assert_eq!(b.energy_uj, 200);
        assert_eq!(b.avg_power_mw(1_000_000), Some(50));
        assert_eq!(mean_power(Some(10), Some(21)), Some(15));
        assert_eq!(mean_power(None, Some(7)), Some(7));
    }
}

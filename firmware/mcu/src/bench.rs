//! Benchmark arithmetic: energy from power and time.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_and_power() {
        // 50 mW for 1 ms = 50 µJ.
        assert_eq!(energy_uj(50, 1_000, 1_000_000), Some(50));
        assert_eq!(energy_uj(50, 1_000, 0), None);
        assert_eq!(mean_power(Some(10), Some(21)), Some(15));
        assert_eq!(mean_power(None, Some(7)), Some(7));
    }
}

//! Running totals of a benchmark, as [`BenchSummary`](crate::BenchSummary)
//! reports them; kept the same way by the firmware and the Linux agent.

/// Samples, ticks and energy of a benchmark so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BenchTally {
    /// Samples run.
    pub samples: u32,
    /// Sum of the samples' ticks.
    pub total_ticks: u64,
    /// Fastest sample (0 before the first).
    pub min_ticks: u64,
    /// Slowest sample.
    pub max_ticks: u64,
    /// Energy of the samples whose power could be read.
    pub energy_uj: u64,
    /// Ticks of those samples.
    pub energy_ticks: u64,
    /// Whether any sample had an energy.
    pub energy_measured: bool,
}

impl BenchTally {
    /// Adds one inference.
    pub fn record(&mut self, ticks: u64, energy_uj: Option<u32>) {
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

    /// Mean power over the samples with an energy: energy / their time.
    pub fn avg_power_mw(&self, tick_hz: u64) -> Option<u32> {
        if !self.energy_measured || self.energy_ticks == 0 {
            return None;
        }
        // mW = µJ / 1000 / (ticks / tick_hz)
        let mw = u128::from(self.energy_uj) * u128::from(tick_hz)
            / (u128::from(self.energy_ticks) * 1000);
        Some(u32::try_from(mw).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_power() {
        let mut b = BenchTally::default();
        b.record(1_000, Some(50));
        b.record(3_000, Some(150));
        b.record(2_000, None);
        assert_eq!(
            (b.samples, b.total_ticks, b.min_ticks, b.max_ticks),
            (3, 6_000, 1_000, 3_000)
        );
        assert_eq!(b.energy_uj, 200);
        assert_eq!(b.avg_power_mw(1_000_000), Some(50));
        assert_eq!(BenchTally::default().avg_power_mw(1), None);
    }
}

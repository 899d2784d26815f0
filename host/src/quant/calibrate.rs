//! Calibration: run the f32 graph through tract over sample inputs and choose a
//! range per activation tensor.
//!
//! * `minmax`: the observed minimum and maximum.
//! * `percentile`: the 0.001% / 99.999% quantiles (onnxruntime's default
//!   percentile) of a 2048-bin histogram over the observed range.
//! * `entropy`: TensorRT's KL-divergence threshold search (as in onnxruntime's
//!   entropy calibrator) on a 2048-bin histogram of |x|; the threshold clips the
//!   range. Tensors that are never negative (after ReLU) search over 255 levels,
//!   signed tensors over 128 (one sign's share of int8).
//!
//! Two passes over the samples: ranges first, then histograms over those ranges.

use serde::Serialize;

pub const HISTOGRAM_BINS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    MinMax,
    /// Keep this percentile of values, e.g. 99.999.
    Percentile(f64),
    Entropy,
}

impl CalibrationMethod {
    pub fn name(&self) -> &'static str {
        match self {
            CalibrationMethod::MinMax => "minmax",
            CalibrationMethod::Percentile(_) => "percentile",
            CalibrationMethod::Entropy => "entropy",
        }
    }

    fn needs_histogram(&self) -> bool {
        !matches!(self, CalibrationMethod::MinMax)
    }
}

/// Running statistics of one tensor.
#[derive(Debug, Clone)]
pub struct TensorObserver {
    pub min: f32,
    pub max: f32,
    /// Filled in the second pass: over [min, max] for percentile, over [0, max|x|] for entropy.
    histogram: Vec<u64>,
    hist_lo: f32,
    hist_hi: f32,
}

impl Default for TensorObserver {
    fn default() -> Self {
        TensorObserver {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            histogram: vec![],
            hist_lo: 0.0,
            hist_hi: 0.0,
        }
    }
}

impl TensorObserver {
    pub fn observe_range(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
    }

    fn start_histogram(&mut self, method: CalibrationMethod) {
        let (lo, hi) = match method {
            CalibrationMethod::Entropy => (0.0, self.min.abs().max(self.max.abs())),
            _ => (self.min, self.max),
        };
        self.hist_lo = lo;
        self.hist_hi = hi;
        self.histogram = vec![0; HISTOGRAM_BINS];
    }

    fn observe_histogram(&mut self, values: &[f32], method: CalibrationMethod) {
        let width = self.hist_hi - self.hist_lo;
        if width <= 0.0 || !width.is_finite() {
            return;
        }
        let scale = HISTOGRAM_BINS as f32 / width;
        let abs = matches!(method, CalibrationMethod::Entropy);
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            let v = if abs { v.abs() } else { v };
            let bin = (((v - self.hist_lo) * scale) as usize).min(HISTOGRAM_BINS - 1);
            self.histogram[bin] += 1;
        }
    }

    /// The range chosen by `method` (always containing 0, as int8 zero must be exact).
    pub fn range(&self, method: CalibrationMethod) -> (f32, f32) {
        let (min, max) = if self.min > self.max {
            (0.0, 0.0)
        } else {
            (self.min, self.max)
        };
        let (lo, hi) = match method {
            CalibrationMethod::MinMax => (min, max),
            CalibrationMethod::Percentile(p) if !self.histogram.is_empty() => {
                let total: u64 = self.histogram.iter().sum();
                let tail = ((100.0 - p) / 100.0 * total as f64).max(0.0);
                let bin_width = (self.hist_hi - self.hist_lo) / HISTOGRAM_BINS as f32;
                let mut lo_bin = 0;
                let mut acc = 0u64;
                for (i, &c) in self.histogram.iter().enumerate() {
                    acc += c;
                    if acc as f64 > tail {
                        lo_bin = i;
                        break;
                    }
                }
                let mut hi_bin = HISTOGRAM_BINS - 1;
                acc = 0;
                for (i, &c) in self.histogram.iter().enumerate().rev() {
                    acc += c;
                    if acc as f64 > tail {
                        hi_bin = i;
                        break;
                    }
                }
                (
                    self.hist_lo + lo_bin as f32 * bin_width,
                    self.hist_lo + (hi_bin + 1) as f32 * bin_width,
                )
            }
            CalibrationMethod::Entropy if !self.histogram.is_empty() => {
                let levels = if min >= 0.0 { 255 } else { 128 };
                let bin_width = (self.hist_hi - self.hist_lo) / HISTOGRAM_BINS as f32;
                let threshold = kl_threshold(&self.histogram, levels) as f32 * bin_width;
                (min.max(-threshold), max.min(threshold))
            }
            _ => (min, max),
        };
        (lo.min(0.0), hi.max(0.0))
    }
}

/// TensorRT's entropy calibration: the number of histogram bins to keep such that
/// quantising them into `levels` levels loses the least information (KL(P || Q)).
pub fn kl_threshold(histogram: &[u64], levels: usize) -> usize {
    let n = histogram.len();
    if n <= levels {
        return n;
    }
    let mut best = (f64::INFINITY, n);
    for i in levels..=n {
        // Reference distribution: the first i bins, outliers folded into the last.
        let mut p: Vec<f64> = histogram[..i].iter().map(|&c| c as f64).collect();
        p[i - 1] += histogram[i..].iter().map(|&c| c as f64).sum::<f64>();
        // Candidate: the same i bins merged into `levels` groups, each group's mass
        // spread evenly over its non-empty bins.
        let mut q = vec![0.0f64; i];
        for level in 0..levels {
            let start = level * i / levels;
            let end = ((level + 1) * i / levels).max(start + 1).min(i);
            let mass: f64 = histogram[start..end].iter().map(|&c| c as f64).sum();
            let nonzero = histogram[start..end].iter().filter(|&&c| c > 0).count();
            if nonzero > 0 {
                for j in start..end {
                    if histogram[j] > 0 {
                        q[j] = mass / nonzero as f64;
                    }
                }
            }
        }
        let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for (pv, qv) in p.iter().zip(&q) {
            if *pv > 0.0 {
                let (pn, qn) = (pv / ps, qv / qs);
                // A bin P has and Q lacks: a large finite penalty, as TensorRT smooths.
                kl += pn * if qn > 0.0 { (pn / qn).ln() } else { 20.0 };
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// Collects ranges for a set of tensors over a stream of samples in two passes.
pub struct Calibrator {
    pub method: CalibrationMethod,
    pub observers: Vec<TensorObserver>,
}

impl Calibrator {
    pub fn new(method: CalibrationMethod, tensors: usize) -> Calibrator {
        Calibrator {
            method,
            observers: vec![TensorObserver::default(); tensors],
        }
    }

    /// Whether a second pass (histograms) is needed after the first (ranges).
    pub fn passes(&self) -> usize {
        if self.method.needs_histogram() {
            2
        } else {
            1
        }
    }

    /// Feeds one sample's values for every tensor, in the given pass (0 or 1).
    pub fn observe(&mut self, pass: usize, values: &[Vec<f32>]) {
        for (obs, v) in self.observers.iter_mut().zip(values) {
            if pass == 0 {
                obs.observe_range(v);
            } else {
                if obs.histogram.is_empty() {
                    obs.start_histogram(self.method);
                }
                obs.observe_histogram(v, self.method);
            }
        }
    }

    pub fn ranges(&self) -> Vec<(f32, f32)> {
        self.observers
            .iter()
            .map(|o| o.range(self.method))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: CalibrationMethod, values: &[f32]) -> (f32, f32) {
        let mut c = Calibrator::new(method, 1);
        for pass in 0..c.passes() {
            for chunk in values.chunks(100) {
                c.observe(pass, &[chunk.to_vec()]);
            }
        }
        c.ranges()[0]
    }

    #[test]
    fn minmax_keeps_everything_and_includes_zero() {
        assert_eq!(run(CalibrationMethod::MinMax, &[1.0, 2.0, 3.0]), (0.0, 3.0));
        assert_eq!(run(CalibrationMethod::MinMax, &[-1.0, 2.0]), (-1.0, 2.0));
    }

    #[test]
    fn percentile_drops_a_rare_outlier() {
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(50.0);
        let (lo, hi) = run(CalibrationMethod::Percentile(99.99), &v);
        assert_eq!(lo, 0.0);
        assert!(hi < 1.1, "outlier clipped: {hi}");
        assert!(hi > 0.95, "bulk kept: {hi}");
    }

    #[test]
    fn entropy_clips_a_long_tail_but_keeps_the_bulk() {
        // Mostly in [0, 1], a thin tail to 20.
        let mut v: Vec<f32> = (0..200_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.extend((0..50).map(|i| 1.0 + i as f32 * 0.38));
        let (lo, hi) = run(CalibrationMethod::Entropy, &v);
        assert_eq!(lo, 0.0);
        assert!((0.9..5.0).contains(&hi), "threshold {hi}");
    }

    #[test]
    fn kl_keeps_all_bins_of_a_uniform_histogram() {
        let h = vec![10u64; 512];
        assert_eq!(kl_threshold(&h, 128), 512);
    }
}

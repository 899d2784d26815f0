//! Energy over a benchmark run: what a run of N inferences cost in joules,
//! and the average power while it ran.
//!
//! Counter sensors (RAPL) give the exact energy between two counter reads.
//! Instantaneous sensors are sampled and integrated with the trapezoid rule,
//! so their accuracy depends on the sampling interval compared with how
//! fast the load changes.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{PowerError, PowerSensor};

/// How an [`EnergyReport`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergyMethod {
    /// Difference of a hardware energy counter: exact to the counter's unit.
    Counter,
    /// Trapezoidal integral of power samples.
    Integrated,
}

/// Energy used between [`EnergyMeter::start`] and [`EnergyMeter::finish`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyReport {
    pub joules: f64,
    /// Time between the first and the last sample, i.e. the span the
    /// joules cover.
    pub elapsed: Duration,
    /// Sensor reads taken, including the first and last.
    pub samples: usize,
    /// Highest sampled power; `None` for counter sensors, which give no
    /// instantaneous values.
    pub peak_watts: Option<f64>,
    pub method: EnergyMethod,
}

impl EnergyReport {
    /// Mean power over [`elapsed`](Self::elapsed); 0 for an empty span.
    pub fn average_watts(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.joules / seconds
        } else {
            0.0
        }
    }

    /// Joules per unit of work, e.g. per inference when `count` inferences
    /// ran; 0 when `count` is 0.
    pub fn joules_per(&self, count: u64) -> f64 {
        if count == 0 {
            0.0
        } else {
            self.joules / count as f64
        }
    }
}

/// Trapezoidal integration of power samples taken at known times.
#[derive(Debug, Clone, Default)]
pub struct TrapezoidIntegrator {
    first_at: Option<Duration>,
    last: Option<(Duration, f64)>,
    joules: f64,
    samples: usize,
    peak_watts: Option<f64>,
}

impl TrapezoidIntegrator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample taken `at` after some fixed origin. Samples must come
    /// in time order; one earlier than the previous adds no energy.
    pub fn add(&mut self, at: Duration, watts: f64) {
        if let Some((last_at, last_watts)) = self.last {
            let dt = at.saturating_sub(last_at).as_secs_f64();
            self.joules += (last_watts + watts) / 2.0 * dt;
        }
        self.first_at.get_or_insert(at);
        self.last = Some((at, watts));
        self.samples += 1;
        self.peak_watts = Some(self.peak_watts.map_or(watts, |p| p.max(watts)));
    }

    /// Energy between the first and the last sample.
    pub fn joules(&self) -> f64 {
        self.joules
    }

    /// Time between the first and the last sample.
    pub fn span(&self) -> Duration {
        match (self.first_at, self.last) {
            (Some(first), Some((last, _))) => last.saturating_sub(first),
            _ => Duration::ZERO,
        }
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn peak_watts(&self) -> Option<f64> {
        self.peak_watts
    }
}

enum Method {
    Counter {
        start_joules: f64,
        start_at: Duration,
        last_joules: f64,
        last_at: Duration,
        samples: usize,
    },
    Integrated(TrapezoidIntegrator),
}

/// Measures the energy a sensor sees over an interval.
///
/// Call [`start`](Self::start) before the work, [`sample`](Self::sample)
/// periodically during it (needed for instantaneous sensors; for counters
/// it guards against a counter wrapping twice unseen), and
/// [`finish`](Self::finish) after. [`measure`] does all three for you on a
/// background thread.
pub struct EnergyMeter<'s> {
    sensor: &'s mut dyn PowerSensor,
    origin: Instant,
    method: Method,
}

impl<'s> EnergyMeter<'s> {
    /// Takes the first reading. Uses the sensor's energy counter if it has
    /// one, sampling otherwise.
    pub fn start(sensor: &'s mut dyn PowerSensor) -> Result<Self, PowerError> {
        let origin = Instant::now();
        let (at, counter) = timed(origin, || sensor.energy_joules())?;
        let method = match counter {
            Some(joules) => Method::Counter {
                start_joules: joules,
                start_at: at,
                last_joules: joules,
                last_at: at,
                samples: 1,
            },
            None => {
                let (at, reading) = timed(origin, || sensor.read())?;
                let mut integrator = TrapezoidIntegrator::new();
                integrator.add(at, reading.watts);
                Method::Integrated(integrator)
            }
        };
        Ok(Self {
            sensor,
            origin,
            method,
        })
    }

    /// Takes one more reading.
    pub fn sample(&mut self) -> Result<(), PowerError> {
        let origin = self.origin;
        match &mut self.method {
            Method::Counter {
                last_joules,
                last_at,
                samples,
                ..
            } => {
                let (at, joules) = timed(origin, || self.sensor.energy_joules())?;
                // A sensor that had a counter at start keeps it; treat a
                // vanished one as no progress rather than guessing.
                if let Some(joules) = joules {
                    *last_joules = joules;
                    *last_at = at;
                    *samples += 1;
                }
            }
            Method::Integrated(integrator) => {
                let (at, reading) = timed(origin, || self.sensor.read())?;
                integrator.add(at, reading.watts);
            }
        }
        Ok(())
    }

    /// Takes the last reading and reports.
    pub fn finish(mut self) -> Result<EnergyReport, PowerError> {
        self.sample()?;
        Ok(match self.method {
            Method::Counter {
                start_joules,
                start_at,
                last_joules,
                last_at,
                samples,
            } => EnergyReport {
                joules: last_joules - start_joules,
                elapsed: last_at.saturating_sub(start_at),
                samples,
                peak_watts: None,
                method: EnergyMethod::Counter,
            },
            Method::Integrated(integrator) => EnergyReport {
                joules: integrator.joules(),
                elapsed: integrator.span(),
                samples: integrator.samples(),
                peak_watts: integrator.peak_watts(),
                method: EnergyMethod::Integrated,
            },
        })
    }
}

/// Runs `read` and stamps its result with the midpoint of the call, since
/// a slow sensor (vcgencmd takes milliseconds) samples somewhere inside it.
fn timed<T>(
    origin: Instant,
    read: impl FnOnce() -> Result<T, PowerError>,
) -> Result<(Duration, T), PowerError> {
    let before = origin.elapsed();
    let value = read()?;
    let after = origin.elapsed();
    Ok((before + (after - before) / 2, value))
}

/// Runs `work` on the calling thread while a background thread samples
/// `sensor` every `interval`; returns the work's result and the energy it
/// took. The work's result is returned even if the sensor fails.
///
/// Pick `interval` well below the run time (e.g. 10–50 ms); each sample
/// costs a sysfs read, or a `vcgencmd` process on a Pi 5, on another core.
pub fn measure<R>(
    sensor: &mut dyn PowerSensor,
    interval: Duration,
    work: impl FnOnce() -> R,
) -> (R, Result<EnergyReport, PowerError>) {
    let mut meter = match EnergyMeter::start(sensor) {
        Ok(meter) => meter,
        Err(error) => return (work(), Err(error)),
    };
    let (stop, stopped) = mpsc::channel::<()>();
    thread::scope(|scope| {
        let sampler = scope.spawn(move || {
            // Sample until told to stop (or the sender is dropped because
            // `work` panicked).
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                meter.sample()?;
            }
            meter.finish()
        });
        let result = work();
        drop(stop);
        let report = match sampler.join() {
            Ok(report) => report,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (result, report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trapezoid_integrates_piecewise_linear_power() {
        let mut integrator = TrapezoidIntegrator::new();
        integrator.add(Duration::from_secs(1), 2.0);
        integrator.add(Duration::from_secs(2), 4.0);
        integrator.add(Duration::from_secs(4), 4.0);
        // (2+4)/2·1 + 4·2 = 11 J over 3 s.
        assert_eq!(integrator.joules(), 11.0);
        assert_eq!(integrator.span(), Duration::from_secs(3));
        assert_eq!(integrator.samples(), 3);
        assert_eq!(integrator.peak_watts(), Some(4.0));
    }

    #[test]
    fn report_averages_and_divides() {
        let report = EnergyReport {
            joules: 12.0,
            elapsed: Duration::from_secs(4),
            samples: 5,
            peak_watts: None,
            method: EnergyMethod::Counter,
        };
        assert_eq!(report.average_watts(), 3.0);
        assert_eq!(report.joules_per(100), 0.12);
        assert_eq!(report.joules_per(0), 0.0);
    }
}

//! Power for benchmark records: the best sensor `edgefit-power` finds on
//! the board, read around each inference. A counter sensor (RAPL) gives the
//! energy of the inference exactly; an instantaneous one (INA3221, Pi 5
//! PMIC, hwmon) is read before and after, and the mean times the inference
//! time is its energy, as on the microcontroller.

use std::path::Path;
use std::time::Duration;

use edgefit_power::{Discovery, PowerSensor};
use edgefit_proto::PowerSensorKind;

/// The agent's power sensor, if the board has one.
pub struct AgentPower {
    sensor: Option<Box<dyn PowerSensor>>,
    kind: PowerSensorKind,
    description: String,
}

/// A reading taken before an inference.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Joules(f64),
    Watts(f64),
}

fn kind_of(source: &str) -> PowerSensorKind {
    match source {
        "ina3221" => PowerSensorKind::Ina3221,
        "rpi5-pmic" => PowerSensorKind::PiPmic,
        "rapl" => PowerSensorKind::Rapl,
        "hwmon" => PowerSensorKind::Hwmon,
        _ => PowerSensorKind::External,
    }
}

impl AgentPower {
    /// The first (best) sensor under `root` (normally `/`).
    pub fn discover(root: &Path) -> Self {
        let found = Discovery::new(root).run();
        let skipped: Vec<String> = found
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.source, s.error))
            .collect();
        match found.sensors.into_iter().next() {
            Some(sensor) => AgentPower {
                kind: kind_of(sensor.source()),
                description: format!(
                    "{} {} ({:?})",
                    sensor.source(),
                    sensor.name(),
                    sensor.scope()
                ),
                sensor: Some(sensor),
            },
            None => AgentPower::none(if skipped.is_empty() {
                "no power sensor found".into()
            } else {
                format!("no readable power sensor ({})", skipped.join("; "))
            }),
        }
    }

    /// No sensor, with the reason.
    pub fn none(why: String) -> Self {
        AgentPower {
            sensor: None,
            kind: PowerSensorKind::None,
            description: why,
        }
    }

    pub fn kind(&self) -> PowerSensorKind {
        self.kind
    }

    /// What the sensor is, or why there is none.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Reads just before an inference. A failing read gives `None` (that
    /// record then carries no energy), never a guess.
    pub fn mark(&mut self) -> Option<Mark> {
        let s = self.sensor.as_mut()?;
        match s.energy_joules() {
            Ok(Some(j)) => Some(Mark::Joules(j)),
            Ok(None) => s.read().ok().map(|r| Mark::Watts(r.watts)),
            Err(_) => None,
        }
    }

    /// Energy of the inference since `mark`, in µJ.
    pub fn energy_uj(&mut self, mark: Option<Mark>, elapsed: Duration) -> Option<u32> {
        let s = self.sensor.as_mut()?;
        let joules = match mark? {
            Mark::Joules(j0) => s.energy_joules().ok()?? - j0,
            Mark::Watts(w0) => {
                let w1 = s.read().ok()?.watts;
                (w0 + w1) / 2.0 * elapsed.as_secs_f64()
            }
        };
        (joules.is_finite() && joules >= 0.0)
            .then(|| (joules * 1e6).round().min(u32::MAX as f64) as u32)
    }

    /// Power now, in mW (idle power before a benchmark).
    pub fn power_mw(&mut self) -> Option<u32> {
        let r = self.sensor.as_mut()?.read().ok()?;
        (r.watts.is_finite() && r.watts >= 0.0).then(|| (r.watts * 1000.0).round() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_boards_give_their_sensor_and_an_energy() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../power/tests/fixtures");
        let mut jetson = AgentPower::discover(&fixtures.join("jetson-orin-nano"));
        assert_eq!(
            jetson.kind(),
            PowerSensorKind::Ina3221,
            "{}",
            jetson.description()
        );
        let m = jetson.mark();
        // Fixture files do not change: mean power x 2 ms.
        let w = jetson.power_mw().unwrap() as f64 / 1000.0;
        let uj = jetson.energy_uj(m, Duration::from_millis(2)).unwrap() as f64;
        assert!((uj - w * 2000.0).abs() <= 1.0, "{uj} vs {w} W");
        let mut none = AgentPower::discover(&fixtures.join("does-not-exist"));
        assert_eq!(none.kind(), PowerSensorKind::None);
        assert!(none.mark().is_none());
        assert_eq!(none.energy_uj(None, Duration::from_millis(1)), None);
    }
}

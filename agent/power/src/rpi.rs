//! Raspberry Pi 5 PMIC (Renesas DA9091 "Gilmour") ADC, read through the
//! firmware with `vcgencmd pmic_read_adc`.
//!
//! The command prints one line per ADC channel, current channels as
//! `<RAIL>_A current(<n>)=<amps>A` and voltage channels as
//! `<RAIL>_V volt(<n>)=<volts>V`, right-aligned with leading spaces.
//! Pairing `<RAIL>_A` with `<RAIL>_V` and summing V × I gives the usual
//! Pi 5 power estimate. It covers the PMIC's output rails only: losses in
//! converting the 5 V input, and loads fed straight from 5 V (USB ports,
//! fan, HATs), are not in it, so it reads lower than a USB-C power meter.
//! Channels without a partner (`EXT5V_V`, `BATT_V`) are not part of the sum.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{PowerError, PowerReading, PowerScope, PowerSensor};

/// The firmware command-line tool, looked up on `PATH`.
pub const VCGENCMD: &str = "vcgencmd";
/// Arguments that make `vcgencmd` print every PMIC ADC channel.
pub const PMIC_READ_ADC_ARGS: &[&str] = &["pmic_read_adc"];

const COMMAND_LINE: &str = "vcgencmd pmic_read_adc";

/// Runs an external program and returns its standard output. Injected so
/// tests (and hosts without the Pi firmware) can supply the output.
pub trait CommandRunner: Send {
    fn run(&self, program: &str, args: &[&str]) -> Result<String, PowerError>;
}

/// Any `Fn(program, args) -> stdout` closure is a runner.
impl<F> CommandRunner for F
where
    F: Fn(&str, &[&str]) -> Result<String, PowerError> + Send,
{
    fn run(&self, program: &str, args: &[&str]) -> Result<String, PowerError> {
        self(program, args)
    }
}

/// Runs real processes, killing any that outlive `timeout` so a wedged
/// firmware mailbox cannot hang a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemCommandRunner {
    pub timeout: Duration,
}

impl Default for SystemCommandRunner {
    fn default() -> Self {
        // vcgencmd answers in tens of milliseconds; seconds means stuck.
        Self {
            timeout: Duration::from_secs(2),
        }
    }
}

impl CommandRunner for SystemCommandRunner {
    fn run(&self, program: &str, args: &[&str]) -> Result<String, PowerError> {
        let command = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let fail = |detail: String| PowerError::Command {
            command: command.clone(),
            detail,
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        // Drain both pipes on threads so a chatty child cannot block on a
        // full pipe while we wait for it to exit.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = match wait_with_deadline(&mut child, self.timeout) {
            Ok(Some(status)) => status,
            Ok(None) => {
                // Best effort: the child may have exited just now.
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("no answer within {:?}", self.timeout)));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
            let stdout = String::from_utf8_lossy(&stdout).trim().to_string();
            let said = if stderr.is_empty() { stdout } else { stderr };
            return Err(fail(format!("{status}: {said}")));
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what was read so far; the exit status
            // tells whether the command worked.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One PMIC output rail with both its voltage and current channels.
#[derive(Debug, Clone, PartialEq)]
pub struct PmicRail {
    /// Rail name without the `_A` / `_V` suffix, e.g. `VDD_CORE`.
    pub name: String,
    pub volts: f64,
    pub amps: f64,
}

impl PmicRail {
    pub fn watts(&self) -> f64 {
        self.volts * self.amps
    }
}

/// Parses `vcgencmd pmic_read_adc` output into rails that have both a
/// current and a voltage line, in order of first appearance.
///
/// Lines that are not `NAME_A ...=<n>A` or `NAME_V ...=<n>V` are ignored,
/// so new firmware channels do not break parsing. A recognised line with an
/// unparsable number is an error: dropping a rail silently would
/// under-report power. No complete pair at all is an error too.
pub fn parse_pmic_adc(output: &str) -> Result<Vec<PmicRail>, PowerError> {
    // (name, amps, volts), kept in order of first appearance.
    let mut channels: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if line.starts_with("error=") {
            // vcgencmd's way of rejecting a command (e.g. on a Pi 4).
            return Err(PowerError::InvalidOutput {
                command: COMMAND_LINE,
                detail: line.to_string(),
            });
        }
        let Some((lhs, value)) = line.split_once('=') else {
            continue;
        };
        let Some(channel) = lhs.split_whitespace().next() else {
            continue;
        };
        let (rail, unit) = if let Some(rail) = channel.strip_suffix("_A") {
            (rail, 'A')
        } else if let Some(rail) = channel.strip_suffix("_V") {
            (rail, 'V')
        } else {
            continue;
        };
        let number = value.trim().trim_end_matches(unit).trim();
        let parsed = number
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| PowerError::InvalidOutput {
                command: COMMAND_LINE,
                detail: format!("cannot parse the value in {line:?}"),
            })?;
        let slot = match channels.iter().position(|(name, _, _)| name == rail) {
            Some(i) => &mut channels[i],
            None => {
                channels.push((rail.to_string(), None, None));
                let last = channels.len() - 1;
                &mut channels[last]
            }
        };
        if unit == 'A' {
            slot.1 = Some(parsed);
        } else {
            slot.2 = Some(parsed);
        }
    }
    let rails: Vec<PmicRail> = channels
        .into_iter()
        .filter_map(|(name, amps, volts)| {
            Some(PmicRail {
                name,
                volts: volts?,
                amps: amps?,
            })
        })
        .collect();
    if rails.is_empty() {
        return Err(PowerError::InvalidOutput {
            command: COMMAND_LINE,
            detail: "no rail has both a current (_A) and a voltage (_V) line".to_string(),
        });
    }
    Ok(rails)
}

/// Raspberry Pi 5 power as the sum of V × I over the PMIC's output rails.
///
/// This excludes the 5 V input conversion losses and anything powered
/// directly from 5 V (USB devices, fan, HATs): it is the SoC-and-memory
/// side of the board, lower than the wall draw.
pub struct RpiPmicSensor {
    runner: Box<dyn CommandRunner>,
}

impl std::fmt::Debug for RpiPmicSensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpiPmicSensor").finish_non_exhaustive()
    }
}

impl RpiPmicSensor {
    /// Opens the sensor, running the command once to check the firmware
    /// answers with usable rails (a Pi 4 rejects `pmic_read_adc`).
    pub fn open(runner: impl CommandRunner + 'static) -> Result<Self, PowerError> {
        Self::open_boxed(Box::new(runner))
    }

    /// [`open`](Self::open) for a runner that is already boxed.
    pub fn open_boxed(runner: Box<dyn CommandRunner>) -> Result<Self, PowerError> {
        let mut sensor = Self { runner };
        sensor.read_rails()?;
        Ok(sensor)
    }

    /// Opens the sensor with the real `vcgencmd`.
    pub fn open_system() -> Result<Self, PowerError> {
        Self::open(SystemCommandRunner::default())
    }

    /// Every rail with its voltage and current, for a per-rail breakdown.
    pub fn read_rails(&mut self) -> Result<Vec<PmicRail>, PowerError> {
        let output = self.runner.run(VCGENCMD, PMIC_READ_ADC_ARGS)?;
        parse_pmic_adc(&output)
    }
}

impl PowerSensor for RpiPmicSensor {
    fn name(&self) -> &str {
        "PMIC rails"
    }

    fn source(&self) -> &'static str {
        "rpi5-pmic"
    }

    fn scope(&self) -> PowerScope {
        PowerScope::BoardRails
    }

    fn read(&mut self) -> Result<PowerReading, PowerError> {
        let watts = self.read_rails()?.iter().map(PmicRail::watts).sum();
        Ok(PowerReading {
            watts,
            averaged_over: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_unknown_lines_and_unpaired_channels() {
        let out = "hello\n  VDD_CORE_A current(7)=2.0A\n VDD_CORE_V volt(15)=0.5V\n EXT5V_V volt(24)=5.1V\n";
        let rails = parse_pmic_adc(out).expect("one pair");
        assert_eq!(
            rails,
            [PmicRail {
                name: "VDD_CORE".into(),
                volts: 0.5,
                amps: 2.0
            }]
        );
    }

    #[test]
    fn rejects_output_without_pairs() {
        let err = parse_pmic_adc("EXT5V_V volt(24)=5.1V\n").expect_err("no pair");
        assert!(matches!(err, PowerError::InvalidOutput { .. }), "{err}");
        let err = parse_pmic_adc("").expect_err("empty");
        assert!(matches!(err, PowerError::InvalidOutput { .. }), "{err}");
    }

    #[test]
    fn reports_firmware_errors() {
        let err = parse_pmic_adc("error=2 error_msg=\"Invalid arguments\"\n").expect_err("error");
        assert!(err.to_string().contains("Invalid arguments"), "{err}");
    }

    #[test]
    fn rejects_a_garbled_number_on_a_known_line() {
        let err = parse_pmic_adc("VDD_CORE_A current(7)=1.2.3A\nVDD_CORE_V volt(15)=0.8V\n")
            .expect_err("garbled");
        assert!(err.to_string().contains("VDD_CORE_A"), "{err}");
    }

    #[test]
    fn system_runner_returns_stdout() {
        let out = SystemCommandRunner::default()
            .run("sh", &["-c", "echo ' VDD_CORE_A current(7)=1.0A'"])
            .expect("sh runs");
        assert_eq!(out, " VDD_CORE_A current(7)=1.0A\n");
    }

    #[test]
    fn system_runner_reports_failure_with_stderr() {
        let err = SystemCommandRunner::default()
            .run(
                "sh",
                &["-c", "echo 'VCHI initialization failed' >&2; exit 255"],
            )
            .expect_err("exit 255");
        assert!(
            err.to_string().contains("VCHI initialization failed"),
            "{err}"
        );
    }

    #[test]
    fn system_runner_kills_a_hung_command() {
        let runner = SystemCommandRunner {
            timeout: Duration::from_millis(100),
        };
        let started = Instant::now();
        let err = runner.run("sleep", &["5"]).expect_err("timeout");
        assert!(err.to_string().contains("no answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn system_runner_reports_a_missing_program() {
        let err = SystemCommandRunner::default()
            .run("edgefit-no-such-program", &[])
            .expect_err("missing");
        assert!(matches!(err, PowerError::Command { .. }), "{err}");
    }
}

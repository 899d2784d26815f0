//! Every reader against the fixture trees in tests/fixtures.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgefit_power::{
    counter_delta, discover, jetson_rails, measure, parse_pmic_adc, Discovery, EnergyMeter,
    EnergyMethod, HwmonPowerSensor, JetsonInaSensor, PowerError, PowerReading, PowerScope,
    PowerSensor, RailSelector, RaplDomain, RaplSensor, RpiPmicSensor,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

/// A scratch directory, removed on drop, for tests that edit files.
struct TempTree(PathBuf);

impl TempTree {
    fn empty() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edgefit-power-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn copy_of(name: &str) -> Self {
        let tree = Self::empty();
        copy_dir(&fixture(name), &tree.0);
        tree
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, contents).expect("write fixture file");
    }

    fn remove(&self, relative: &str) {
        fs::remove_file(self.0.join(relative)).expect("remove fixture file");
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy fixture file");
        }
    }
}

fn names(sensors: &[Box<dyn PowerSensor>]) -> Vec<(&'static str, String)> {
    sensors
        .iter()
        .map(|s| (s.source(), s.name().to_string()))
        .collect()
}

fn pmic_fixture_output() -> String {
    fs::read_to_string(fixture("rpi5/pmic_read_adc.txt")).expect("pmic fixture")
}

/// Sum of V × I over the 12 rails of rpi5/pmic_read_adc.txt, computed
/// exactly in decimal.
const PMIC_FIXTURE_WATTS: f64 = 3.42834000498333;

// ---------------------------------------------------------------- Jetson

#[test]
fn orin_board_input_is_vdd_in_volts_times_amps() {
    let mut sensor = JetsonInaSensor::open(fixture("jetson-orin-nano"), &RailSelector::BoardInput)
        .expect("open");
    assert_eq!(sensor.name(), "VDD_IN");
    assert_eq!(sensor.source(), "ina3221");
    assert_eq!(sensor.scope(), PowerScope::BoardInput);
    let reading = sensor.read().expect("read");
    // 5064 mV × 1208 mA
    assert_close(reading.watts, 6.117312);
    assert_eq!(reading.averaged_over, None);
}

#[test]
fn orin_lists_three_rails_and_not_the_shunt_sum() {
    let rails = jetson_rails(fixture("jetson-orin-nano")).expect("rails");
    assert_eq!(rails, ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]);
}

#[test]
fn orin_rail_by_name_ignores_case() {
    let root = fixture("jetson-orin-nano");
    let mut soc =
        JetsonInaSensor::open(&root, &RailSelector::Named("vdd_soc".into())).expect("open");
    assert_eq!(soc.scope(), PowerScope::Component);
    assert_close(soc.read().expect("read").watts, 1.458432);
    let mut cpu_gpu =
        JetsonInaSensor::open(&root, &RailSelector::Named("VDD_CPU_GPU_CV".into())).expect("open");
    assert_close(cpu_gpu.read().expect("read").watts, 1.053312);
}

#[test]
fn unknown_rail_lists_what_exists() {
    let err = JetsonInaSensor::open(
        fixture("jetson-orin-nano"),
        &RailSelector::Named("VDD_GPU".into()),
    )
    .expect_err("no such rail");
    match &err {
        PowerError::NoSuchRail {
            requested,
            available,
        } => {
            assert_eq!(requested, "VDD_GPU");
            assert_eq!(available, &["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]);
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.is_absent());
}

#[test]
fn disabled_ina3221_channel_is_not_a_rail() {
    let tree = TempTree::copy_of("jetson-orin-nano");
    tree.write("sys/class/hwmon/hwmon1/in3_enable", "0\n");
    let rails = jetson_rails(tree.path()).expect("rails");
    assert_eq!(rails, ["VDD_IN", "VDD_CPU_GPU_CV"]);
}

#[test]
fn nano_iio_board_input_uses_the_driver_power() {
    let mut sensor =
        JetsonInaSensor::open(fixture("jetson-nano-iio"), &RailSelector::BoardInput).expect("open");
    assert_eq!(sensor.rail(), "POM_5V_IN");
    assert_eq!(sensor.scope(), PowerScope::BoardInput);
    assert_close(sensor.read().expect("read").watts, 3.755);
    let mut gpu = JetsonInaSensor::open(
        fixture("jetson-nano-iio"),
        &RailSelector::Named("POM_5V_GPU".into()),
    )
    .expect("open");
    assert_close(gpu.read().expect("read").watts, 0.201);
}

#[test]
fn nano_iio_without_power_file_falls_back_to_volts_times_amps() {
    let tree = TempTree::copy_of("jetson-nano-iio");
    tree.remove("sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input");
    let mut sensor = JetsonInaSensor::open(tree.path(), &RailSelector::BoardInput).expect("open");
    // 5048 mV × 744 mA
    assert_close(sensor.read().expect("read").watts, 3.755712);
}

#[test]
fn no_ina3221_is_no_sensor() {
    let tree = TempTree::empty();
    let err = JetsonInaSensor::open(tree.path(), &RailSelector::BoardInput).expect_err("none");
    assert!(matches!(err, PowerError::NoSensor { .. }), "{err}");
    assert!(err.is_absent());
    assert!(JetsonInaSensor::open_all(tree.path())
        .expect("open_all")
        .is_empty());
}

#[test]
fn garbage_current_is_an_error_naming_the_file() {
    let tree = TempTree::copy_of("jetson-orin-nano");
    let mut sensor = JetsonInaSensor::open(tree.path(), &RailSelector::BoardInput).expect("open");
    tree.write("sys/class/hwmon/hwmon1/curr1_input", "1.2 A\n");
    let err = sensor.read().expect_err("garbage");
    match &err {
        PowerError::InvalidValue { path, contents, .. } => {
            assert!(path.ends_with("hwmon1/curr1_input"), "{}", path.display());
            assert_eq!(contents, "1.2 A");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("curr1_input"), "{err}");
}

#[test]
fn vanished_file_is_an_io_error_naming_it() {
    let tree = TempTree::copy_of("jetson-orin-nano");
    let mut sensor = JetsonInaSensor::open(tree.path(), &RailSelector::BoardInput).expect("open");
    tree.remove("sys/class/hwmon/hwmon1/in1_input");
    let err = sensor.read().expect_err("missing");
    assert!(matches!(err, PowerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("in1_input"), "{err}");
}

// ---------------------------------------------------------- Raspberry Pi 5

#[test]
fn pmic_fixture_parses_into_twelve_rails() {
    let rails = parse_pmic_adc(&pmic_fixture_output()).expect("parse");
    assert_eq!(rails.len(), 12);
    let core = rails
        .iter()
        .find(|r| r.name == "VDD_CORE")
        .expect("VDD_CORE");
    assert_eq!(core.amps, 2.35752);
    assert_eq!(core.volts, 0.8410493);
    // EXT5V_V and BATT_V have no current channel: not rails.
    assert!(rails.iter().all(|r| r.name != "EXT5V" && r.name != "BATT"));
    let total: f64 = rails.iter().map(|r| r.watts()).sum();
    assert_close(total, PMIC_FIXTURE_WATTS);
}

#[test]
fn pmic_sensor_sums_rails_from_the_runner() {
    let output = pmic_fixture_output();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let mut sensor = RpiPmicSensor::open(move |program: &str, args: &[&str]| {
        seen.lock()
            .expect("lock")
            .push(format!("{program} {}", args.join(" ")));
        Ok(output.clone())
    })
    .expect("open");
    assert_eq!(sensor.source(), "rpi5-pmic");
    assert_eq!(sensor.scope(), PowerScope::BoardRails);
    let reading = sensor.read().expect("read");
    assert_close(reading.watts, PMIC_FIXTURE_WATTS);
    assert_eq!(
        *calls.lock().expect("lock"),
        ["vcgencmd pmic_read_adc", "vcgencmd pmic_read_adc"]
    );
}

#[test]
fn pmic_runner_failure_is_a_typed_error() {
    let err = RpiPmicSensor::open(|_: &str, _: &[&str]| {
        Err(PowerError::Command {
            command: "vcgencmd pmic_read_adc".into(),
            detail: "VCHI initialization failed".into(),
        })
    })
    .expect_err("fails");
    assert!(matches!(err, PowerError::Command { .. }), "{err}");
}

#[test]
fn pmic_garbage_output_is_a_typed_error() {
    let err = RpiPmicSensor::open(|_: &str, _: &[&str]| Ok("frequency(48)=1800000000\n".into()))
        .expect_err("no rails");
    assert!(matches!(err, PowerError::InvalidOutput { .. }), "{err}");
}

// ------------------------------------------------------------------- RAPL

const PACKAGE_ENERGY: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const PACKAGE_START_UJ: u64 = 84_313_412_657;
const RAPL_RANGE_UJ: u64 = 262_143_328_850;

#[test]
fn rapl_packages_skip_subzones_and_mmio_duplicate() {
    let tree = TempTree::copy_of("rapl-x86");
    let mut sensor = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect("open");
    assert_eq!(sensor.name(), "package-0");
    assert_eq!(sensor.source(), "rapl");
    assert_eq!(sensor.scope(), PowerScope::Processor);
    assert_eq!(sensor.energy_joules().expect("energy"), Some(0.0));
    // Subzones and the MMIO copy move too; only package-0 may count.
    tree.write(
        PACKAGE_ENERGY,
        &format!("{}\n", PACKAGE_START_UJ + 1_500_000),
    );
    tree.write(
        "sys/class/powercap/intel-rapl:0:0/energy_uj",
        "40124456789\n",
    );
    tree.write(
        "sys/class/powercap/intel-rapl-mmio:0/energy_uj",
        "84314901002\n",
    );
    assert_eq!(sensor.energy_joules().expect("energy"), Some(1.5));
}

#[test]
fn rapl_wraparound_adds_the_distance_to_the_top() {
    let tree = TempTree::copy_of("rapl-x86");
    let mut sensor = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect("open");
    tree.write(PACKAGE_ENERGY, "1000\n");
    let expected_uj = RAPL_RANGE_UJ - PACKAGE_START_UJ + 1 + 1000;
    assert_eq!(
        counter_delta(PACKAGE_START_UJ, 1000, RAPL_RANGE_UJ),
        expected_uj
    );
    assert_eq!(
        sensor.energy_joules().expect("energy"),
        Some(expected_uj as f64 / 1e6)
    );
    // Counting continues normally after the wrap.
    tree.write(PACKAGE_ENERGY, "2001000\n");
    assert_eq!(
        sensor.energy_joules().expect("energy"),
        Some((expected_uj + 2_000_000) as f64 / 1e6)
    );
}

#[test]
fn rapl_read_averages_the_energy_over_its_window() {
    let tree = TempTree::copy_of("rapl-x86");
    let mut sensor = RaplSensor::open(tree.path(), &RaplDomain::Packages)
        .expect("open")
        .with_min_interval(Duration::from_millis(5));
    tree.write(PACKAGE_ENERGY, "100\n"); // wrapped
    let PowerReading {
        watts,
        averaged_over,
    } = sensor.read().expect("read");
    let window = averaged_over.expect("counter readings carry their window");
    assert!(window >= Duration::from_millis(5), "{window:?}");
    let joules = (RAPL_RANGE_UJ - PACKAGE_START_UJ + 1 + 100) as f64 / 1e6;
    assert!(
        (watts * window.as_secs_f64() - joules).abs() < 1e-9 * joules,
        "{watts} W over {window:?} is not {joules} J"
    );
}

#[test]
fn rapl_named_zone_and_psys() {
    let tree = TempTree::copy_of("rapl-x86");
    let core = RaplSensor::open(tree.path(), &RaplDomain::Named("core".into())).expect("core");
    assert_eq!(core.name(), "core");
    assert_eq!(core.scope(), PowerScope::Component);
    let err = RaplSensor::open(tree.path(), &RaplDomain::Psys).expect_err("no psys");
    assert!(err.is_absent(), "{err}");
    tree.write("sys/class/powercap/intel-rapl:1/name", "psys\n");
    tree.write("sys/class/powercap/intel-rapl:1/energy_uj", "9876543210\n");
    tree.write(
        "sys/class/powercap/intel-rapl:1/max_energy_range_uj",
        &format!("{RAPL_RANGE_UJ}\n"),
    );
    let psys = RaplSensor::open(tree.path(), &RaplDomain::Psys).expect("psys");
    assert_eq!(psys.scope(), PowerScope::Platform);
    // psys is top level but not a package: never summed into Packages.
    let packages = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect("packages");
    assert_eq!(packages.name(), "package-0");
}

#[test]
fn rapl_missing_powercap_is_no_sensor() {
    let tree = TempTree::empty();
    let err = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect_err("none");
    assert!(matches!(err, PowerError::NoSensor { .. }), "{err}");
}

#[test]
fn rapl_garbage_counter_is_an_error_naming_the_file() {
    let tree = TempTree::copy_of("rapl-x86");
    tree.write(PACKAGE_ENERGY, "not a number\n");
    let err = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect_err("garbage");
    assert!(matches!(err, PowerError::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("intel-rapl:0/energy_uj"), "{err}");
}

#[test]
fn rapl_unreadable_counter_is_an_io_error_naming_the_file() {
    // Root can read any mode, so make the counter unreadable as a directory.
    let tree = TempTree::copy_of("rapl-x86");
    tree.remove(PACKAGE_ENERGY);
    fs::create_dir(tree.path().join(PACKAGE_ENERGY)).expect("mkdir");
    let err = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect_err("unreadable");
    assert!(matches!(err, PowerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("intel-rapl:0/energy_uj"), "{err}");
}

#[test]
fn rapl_failed_read_keeps_the_previous_state() {
    let tree = TempTree::copy_of("rapl-x86");
    let mut sensor = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect("open");
    tree.write(PACKAGE_ENERGY, "garbage\n");
    assert!(sensor.energy_joules().is_err());
    tree.write(PACKAGE_ENERGY, &format!("{}\n", PACKAGE_START_UJ + 250_000));
    assert_eq!(sensor.energy_joules().expect("energy"), Some(0.25));
}

// ------------------------------------------------------------------ hwmon

#[test]
fn generic_hwmon_reads_microwatts_with_labels() {
    let mut sensors = HwmonPowerSensor::open_all(fixture("hwmon-generic")).expect("open");
    let found: Vec<(String, String, u32, Option<String>)> = sensors
        .iter()
        .map(|s| {
            (
                s.name().to_string(),
                s.device().to_string(),
                s.channel(),
                s.label().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("ina219/power1".into(), "ina219".into(), 1, None),
            ("amdgpu/PPT".into(), "amdgpu".into(), 1, Some("PPT".into())),
        ]
    );
    assert_eq!(sensors[0].source(), "hwmon");
    assert_eq!(sensors[0].scope(), PowerScope::Component);
    assert_close(sensors[0].read().expect("ina219").watts, 2.54);
    // amdgpu has only power1_average.
    assert_close(sensors[1].read().expect("amdgpu").watts, 14.035);
}

#[test]
fn generic_hwmon_leaves_ina3221_to_the_jetson_reader() {
    let sensors = HwmonPowerSensor::open_all(fixture("jetson-orin-nano")).expect("open");
    assert!(sensors.is_empty());
}

#[test]
fn generic_hwmon_garbage_is_an_error_naming_the_file() {
    let tree = TempTree::copy_of("hwmon-generic");
    let mut sensors = HwmonPowerSensor::open_all(tree.path()).expect("open");
    tree.write("sys/class/hwmon/hwmon1/power1_input", "\n");
    let err = sensors[0].read().expect_err("empty value");
    assert!(matches!(err, PowerError::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("hwmon1/power1_input"), "{err}");
}

// -------------------------------------------------------------- discovery

/// A runner that must not be called, counting the calls it gets.
fn counting_runner(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(&str, &[&str]) -> Result<String, PowerError> + Send + 'static {
    let calls = Arc::clone(calls);
    move |_: &str, _: &[&str]| {
        calls.fetch_add(1, Ordering::Relaxed);
        Ok(String::new())
    }
}

#[test]
fn discover_on_an_empty_root_finds_nothing_and_runs_nothing() {
    let tree = TempTree::empty();
    assert!(discover(tree.path()).is_empty());
    let calls = Arc::new(AtomicUsize::new(0));
    let found = Discovery::new(tree.path())
        .with_runner(counting_runner(&calls))
        .run();
    assert!(found.sensors.is_empty());
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[test]
fn discover_on_a_missing_root_finds_nothing() {
    assert!(discover(fixture("does-not-exist")).is_empty());
}

#[test]
fn discover_orin_puts_board_input_first() {
    let sensors = discover(fixture("jetson-orin-nano"));
    assert_eq!(
        names(&sensors),
        [
            ("ina3221", "VDD_IN".to_string()),
            ("ina3221", "VDD_CPU_GPU_CV".to_string()),
            ("ina3221", "VDD_SOC".to_string()),
        ]
    );
    assert_eq!(sensors[0].scope(), PowerScope::BoardInput);
}

#[test]
fn discover_nano_finds_the_iio_rails() {
    let sensors = discover(fixture("jetson-nano-iio"));
    assert_eq!(
        names(&sensors),
        [
            ("ina3221", "POM_5V_IN".to_string()),
            ("ina3221", "POM_5V_GPU".to_string()),
            ("ina3221", "POM_5V_CPU".to_string()),
        ]
    );
}

#[test]
fn discover_rapl_prefers_psys_over_packages() {
    assert_eq!(
        names(&discover(fixture("rapl-x86"))),
        [("rapl", "package-0".to_string())]
    );
    let tree = TempTree::copy_of("rapl-x86");
    tree.write("sys/class/powercap/intel-rapl:1/name", "psys\n");
    tree.write("sys/class/powercap/intel-rapl:1/energy_uj", "1\n");
    tree.write(
        "sys/class/powercap/intel-rapl:1/max_energy_range_uj",
        "262143328850\n",
    );
    assert_eq!(
        names(&discover(tree.path())),
        [
            ("rapl", "psys".to_string()),
            ("rapl", "package-0".to_string())
        ]
    );
}

#[test]
fn discover_reports_unreadable_rapl_as_skipped() {
    let tree = TempTree::copy_of("rapl-x86");
    tree.remove(PACKAGE_ENERGY);
    fs::create_dir(tree.path().join(PACKAGE_ENERGY)).expect("mkdir");
    let found = Discovery::new(tree.path()).run();
    assert!(found.sensors.is_empty());
    assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    assert_eq!(found.skipped[0].source, "rapl");
    assert!(matches!(found.skipped[0].error, PowerError::Io { .. }));
}

#[test]
fn discover_generic_hwmon() {
    assert_eq!(
        names(&discover(fixture("hwmon-generic"))),
        [
            ("hwmon", "ina219/power1".to_string()),
            ("hwmon", "amdgpu/PPT".to_string())
        ]
    );
}

#[test]
fn discover_rpi5_asks_the_firmware() {
    let output = pmic_fixture_output();
    let mut found = Discovery::new(fixture("rpi5"))
        .with_runner(move |_: &str, _: &[&str]| Ok(output.clone()))
        .run();
    assert_eq!(
        names(&found.sensors),
        [("rpi5-pmic", "PMIC rails".to_string())]
    );
    assert_close(
        found.sensors[0].read().expect("read").watts,
        PMIC_FIXTURE_WATTS,
    );
}

#[test]
fn discover_rpi_without_pmic_skips_it_with_the_reason() {
    let found = Discovery::new(fixture("rpi5"))
        .with_runner(|_: &str, _: &[&str]| Ok("error=2 error_msg=\"Invalid arguments\"\n".into()))
        .run();
    assert!(found.sensors.is_empty());
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(found.skipped[0].source, "rpi5-pmic");
    assert!(matches!(
        found.skipped[0].error,
        PowerError::InvalidOutput { .. }
    ));
}

#[test]
fn discover_does_not_run_vcgencmd_on_a_jetson() {
    let calls = Arc::new(AtomicUsize::new(0));
    let found = Discovery::new(fixture("jetson-orin-nano"))
        .with_runner(counting_runner(&calls))
        .run();
    assert_eq!(found.sensors.len(), 3);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

// ----------------------------------------------------------------- energy

#[test]
fn energy_meter_on_rapl_uses_exact_counter_deltas() {
    let tree = TempTree::copy_of("rapl-x86");
    let mut sensor = RaplSensor::open(tree.path(), &RaplDomain::Packages).expect("open");
    let mut meter = EnergyMeter::start(&mut sensor).expect("start");
    tree.write(PACKAGE_ENERGY, &format!("{}\n", RAPL_RANGE_UJ - 500_000));
    meter.sample().expect("sample");
    tree.write(PACKAGE_ENERGY, "499999\n"); // wrapped: exactly 1 J more
    let report = meter.finish().expect("finish");
    let expected_uj = RAPL_RANGE_UJ - 500_000 - PACKAGE_START_UJ + 1_000_000;
    assert_eq!(report.method, EnergyMethod::Counter);
    assert_eq!(report.samples, 3);
    assert_eq!(report.peak_watts, None);
    assert_close(report.joules, expected_uj as f64 / 1e6);
}

/// Always reports the same power.
struct ConstantSensor(f64);

impl PowerSensor for ConstantSensor {
    fn name(&self) -> &str {
        "constant"
    }
    fn source(&self) -> &'static str {
        "test"
    }
    fn scope(&self) -> PowerScope {
        PowerScope::Component
    }
    fn read(&mut self) -> Result<PowerReading, PowerError> {
        Ok(PowerReading {
            watts: self.0,
            averaged_over: None,
        })
    }
}

#[test]
fn measure_integrates_sampled_power_while_work_runs() {
    let mut sensor = ConstantSensor(5.0);
    let (answer, report) = measure(&mut sensor, Duration::from_millis(5), || {
        std::thread::sleep(Duration::from_millis(60));
        42
    });
    assert_eq!(answer, 42);
    let report = report.expect("report");
    assert_eq!(report.method, EnergyMethod::Integrated);
    assert!(report.samples >= 3, "{report:?}");
    assert!(report.elapsed >= Duration::from_millis(60), "{report:?}");
    assert_close(report.joules, 5.0 * report.elapsed.as_secs_f64());
    assert_close(report.average_watts(), 5.0);
    assert_eq!(report.peak_watts, Some(5.0));
    assert_close(report.joules_per(10), report.joules / 10.0);
}

#[test]
fn measure_still_runs_the_work_when_the_sensor_fails() {
    let tree = TempTree::copy_of("hwmon-generic");
    let mut sensors = HwmonPowerSensor::open_all(tree.path()).expect("open");
    tree.remove("sys/class/hwmon/hwmon1/power1_input");
    let (answer, report) = measure(&mut sensors[0], Duration::from_millis(5), || "done");
    assert_eq!(answer, "done");
    let err = report.expect_err("sensor gone");
    assert!(err.to_string().contains("power1_input"), "{err}");
}

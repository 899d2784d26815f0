//! MLPerf Tiny DUT mode over the firmware's link: the ULPMark-ML commands as
//! the official runner sends them, bad input, and the switch back to
//! edgefit's frames.

mod common;

use common::*;
use edgefit_engine::input::InputRecipe;
use edgefit_engine::writer::append_metadata;
use edgefit_engine::Plan;
use edgefit_mcu::COMMAND_MAX;

fn mem() -> (Vec<u8>, Vec<u8>) {
    (vec![0u8; FLASH_BYTES], vec![0u8; ARENA_BYTES])
}

/// Sends `cmd%`, runs the firmware until it is quiet, returns its lines.
fn dut(host: &mut Host, fw: &mut Fw<'_>, cmd: &str) -> Vec<String> {
    host.send_raw(cmd.as_bytes());
    host.send_raw(b"%");
    host.pump(fw);
    let bytes = std::mem::take(&mut *host.link.from_dev.borrow_mut());
    let text = String::from_utf8(bytes).expect("DUT answers are text");
    assert!(text.ends_with("\r\n"), "{text:?}");
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The runner's `load`: `db load N`, then `db HH..` of 31 bytes each.
fn load(host: &mut Host, fw: &mut Fw<'_>, data: &[u8]) -> Vec<String> {
    let mut all = dut(host, fw, &format!("db load {}", data.len()));
    for chunk in data.chunks(31) {
        let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
        all.extend(dut(host, fw, &format!("db {hex}")));
    }
    all
}

/// The runner's regular expressions.
fn results(lines: &[String]) -> Vec<f32> {
    let re = lines
        .iter()
        .find_map(|l| l.strip_prefix("m-results-[")?.strip_suffix(']'))
        .expect("m-results line");
    re.split(',').map(|v| v.parse().expect("float")).collect()
}

/// What the DUT prints for int8 logits: the softmax of the dequantised
/// values (the plan has no softmax), to three decimals.
fn probabilities(out: &[u8], q: edgefit_engine::Quant) -> Vec<f32> {
    let v: Vec<f32> = out
        .iter()
        .map(|&b| (b as i8 as i32 - q.zero_point) as f32 * q.scale)
        .collect();
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = v
        .iter()
        .map(|&x| edgefit_engine::kernels::softmax::exp_f32(x - max))
        .sum();
    v.iter()
        .map(|&x| {
            format!(
                "{:.3}",
                edgefit_engine::kernels::softmax::exp_f32(x - max) / sum
            )
            .parse()
            .unwrap()
        })
        .collect()
}

fn laps(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("m-lap-us-")?.parse().ok())
        .collect()
}

fn error(lines: &[String]) -> &str {
    assert_eq!(
        lines.last().map(String::as_str),
        Some("m-ready"),
        "{lines:?}"
    );
    lines
        .iter()
        .find(|l| l.starts_with("e-["))
        .unwrap_or_else(|| panic!("no e-[...] line: {lines:?}"))
}

#[test]
fn a_runner_session_answers_like_the_reference_dut() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(0x61, 300, 10, 4);
    host.upload(&mut fw, 0x61, &plan);

    // The first command switches the link: the boot lines come first.
    let l = dut(&mut host, &mut fw, "name");
    assert_eq!(
        l,
        [
            "m-timestamp-mode-performance",
            "m-init-done",
            "m-name-dut-[edgefit-test-board]",
            "m-ready"
        ]
    );
    let l = dut(&mut host, &mut fw, "profile");
    assert!(l[0].starts_with("m-profile-[ULPMark for tinyML Firmware V0.0.1"));
    assert_eq!(l[1..], ["m-model-[ic01]", "m-ready"]);

    let mut rng = Rng(17);
    let image = rng.bytes(300);
    let l = load(&mut host, &mut fw, &image);
    assert_eq!(l[0], "m-[Expecting 300 bytes]");
    assert_eq!(
        l.iter().filter(|s| *s == "m-ready").count(),
        1 + 300usize.div_ceil(31)
    );
    assert_eq!(l.iter().filter(|s| *s == "m-load-done").count(), 1);
    let l = dut(&mut host, &mut fw, "db print 10 2");
    let want: Vec<String> = image[2..12].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        l,
        [
            format!("m-buffer-{}", want[..8].join("-")),
            format!("m-buffer-{}", want[8..].join("-")),
            "m-ready".into()
        ]
    );

    let l = dut(&mut host, &mut fw, "infer 3 2");
    let starts: Vec<&str> = l.iter().map(String::as_str).take(3).collect();
    assert_eq!(
        starts,
        ["m-warmup-start-2", "m-warmup-done", "m-infer-start-3"]
    );
    assert_eq!(
        &l[l.len() - 3..l.len() - 1],
        ["m-infer-done".to_string(), l[l.len() - 2].clone()]
    );
    let lap = laps(&l);
    assert_eq!(lap.len(), 2);
    // The fake clock steps STEP ticks (1 µs each) per reading: one per
    // inference and one for the second lap.
    assert_eq!(lap[1] - lap[0], 4 * STEP);

    // Results: the host engine's output for the recipe-mapped input
    // (no recipe recorded: x / 255, then the input's quantisation).
    let parsed = Plan::parse(&plan).unwrap();
    let input = parsed.input().unwrap();
    let mut x = vec![0u8; 300];
    InputRecipe::default()
        .encode(&image, &input, &mut x)
        .unwrap();
    let out = reference(&plan, &x);
    let q = parsed.output().unwrap().quant;
    let want = probabilities(&out, q);
    assert_eq!(results(&l), want);
    // `results` prints the same again.
    assert_eq!(results(&dut(&mut host, &mut fw, "results")), want);
    assert!(dut(&mut host, &mut fw, "help").len() > 5);
    assert_eq!(dut(&mut host, &mut fw, "timestamp").len(), 2);

    // edgefit's host connects again (its leading delimiter, then frames): the
    // plan is still the one flashed.
    host.send_raw(&[0]);
    assert_eq!(
        host.hello(&mut fw).active_plan.map(|p| p.plan_id),
        Some(0x61)
    );
    // ... and a frame without the delimiter first switches back too.
    dut(&mut host, &mut fw, "name");
    assert_eq!(
        host.hello(&mut fw).active_plan.map(|p| p.plan_id),
        Some(0x61)
    );
}

#[test]
fn the_plans_recipe_maps_the_raw_bytes() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    // An int8 plan over 300 inputs recording a recipe with its own scale,
    // mean and std (one value for all channels).
    let meta = b"[preprocess]\nchannels = \"gray\"\nscale = 0.5\nmean = [3.0]\nstd = [40.0]\n";
    let plan = append_metadata(&dense_i8(0x62, 300, 10, 5), meta).unwrap();
    host.upload(&mut fw, 0x62, &plan);
    let image = Rng(3).bytes(300);
    load(&mut host, &mut fw, &image);
    let l = dut(&mut host, &mut fw, "infer 1 0");

    let parsed = Plan::parse(&plan).unwrap();
    let input = parsed.input().unwrap();
    // The arithmetic written out: x / 2 (0.5 is 1/2), minus 3, over 40.
    let x: Vec<u8> = image
        .iter()
        .map(|&p| {
            let v = (p as f32 / 2.0 - 3.0) / 40.0;
            ((v / input.quant.scale).round() + input.quant.zero_point as f32).clamp(-128.0, 127.0)
                as i8 as u8
        })
        .collect();
    let out = reference(&plan, &x);
    let q = parsed.output().unwrap().quant;
    let want = probabilities(&out, q);
    assert_eq!(results(&l), want);
}

#[test]
fn bad_commands_get_an_error_and_keep_the_plan() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);

    // No plan yet.
    assert!(error(&dut(&mut host, &mut fw, "db load 10")).contains("No plan is active"));
    let plan = dense_i8(0x63, 300, 10, 6);
    host.send_raw(&[0]);
    host.upload(&mut fw, 0x63, &plan);
    let active = fw.active_plan();

    let cases: &[(&str, &str)] = &[
        ("db 0102", "db load N first"),
        ("db", "requires a subcommand"),
        ("db load", "requires the # of bytes"),
        ("db load 0", "must be >0"),
        ("db load -4", "must be >0"),
        ("db load 100000000", "do not fit"),
        ("infer 0", "must be >0"),
        ("infer 1 x", "warmup must be >=0"),
        ("infer 1 0", "No complete input"),
        ("frobnicate", "Unknown command: frobnicate"),
        ("results", "No inference"),
    ];
    for (cmd, want) in cases {
        let l = dut(&mut host, &mut fw, cmd);
        assert!(error(&l).contains(want), "{cmd}: {l:?}");
    }

    dut(&mut host, &mut fw, "db load 4");
    assert!(error(&dut(&mut host, &mut fw, "db 010")).contains("Insufficent number of hex digits"));
    assert!(error(&dut(&mut host, &mut fw, "db 01zz")).contains("Invalid hex digit 'zz'"));
    assert!(error(&dut(&mut host, &mut fw, "db 0102030405")).contains("5 bytes sent but 4"));
    assert_eq!(dut(&mut host, &mut fw, "db 010203"), ["m-ready"]);
    assert!(error(&dut(&mut host, &mut fw, "db 0203")).contains("2 bytes sent but 1"));
    assert_eq!(dut(&mut host, &mut fw, "db 04"), ["m-load-done", "m-ready"]);
    assert!(error(&dut(&mut host, &mut fw, "db 05")).contains("0 of 4"));
    assert!(error(&dut(&mut host, &mut fw, "db print 1 9")).contains("beyond"));
    // Four bytes for a 300-element input.
    assert!(error(&dut(&mut host, &mut fw, "infer 1 0"))
        .contains("holds 4 bytes but the plan's input takes 300"));

    // A command longer than the 80-byte buffer.
    let long = "db ".to_string() + &"ab".repeat(COMMAND_MAX);
    assert!(error(&dut(&mut host, &mut fw, &long)).contains("longer than 80 bytes"));
    // Bytes after `%` without a terminator join the next command.
    host.send_raw(b"name%trailing");
    host.pump(&mut fw);
    let l = dut(&mut host, &mut fw, "name");
    assert!(
        l.iter().any(|s| s == "m-name-dut-[edgefit-test-board]"),
        "{l:?}"
    );
    assert!(error(&l).contains("Unknown command: trailingname"), "{l:?}");
    // A lone `%`, then a command: answered.
    host.send_raw(b"%");
    assert_eq!(
        dut(&mut host, &mut fw, "name")[0],
        "m-name-dut-[edgefit-test-board]"
    );

    assert_eq!(fw.active_plan(), active);
    host.send_raw(&[0]);
    assert_eq!(host.hello(&mut fw).active_plan, active);
}

#[test]
fn a_dut_command_ends_an_edgefit_benchmark() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(0x64, 300, 10, 7);
    host.upload(&mut fw, 0x64, &plan);
    host.ack(
        &mut fw,
        &edgefit_proto::HostMsg::BenchStart {
            plan_id: Some(0x64),
            samples: 1,
            want_outputs: false,
            engine: None,
        },
    );
    assert_eq!(
        dut(&mut host, &mut fw, "name")[2],
        "m-name-dut-[edgefit-test-board]"
    );
    host.send_raw(&[0]);
    host.refused(
        &mut fw,
        &edgefit_proto::HostMsg::BenchEnd,
        edgefit_proto::ErrorCode::UnexpectedMessage,
        10,
    );
}

/// A timestamp pin that records its levels.
#[derive(Clone, Default)]
struct RecordingPin(std::rc::Rc<std::cell::RefCell<Vec<bool>>>);

impl embedded_hal::digital::ErrorType for RecordingPin {
    type Error = std::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for RecordingPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.borrow_mut().push(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.0.borrow_mut().push(true);
        Ok(())
    }
}

#[test]
fn energy_mode_marks_time_with_the_pin_outside_the_printed_lines() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(0x65, 300, 10, 8);
    host.upload(&mut fw, 0x65, &plan);
    let pin = RecordingPin::default();
    let mut fw = fw.with_timestamp_pin(pin.clone());
    // Idle high from the start.
    assert_eq!(*pin.0.borrow(), [true]);
    type EnergyFw<'a> = edgefit_mcu::Firmware<
        'a,
        Link,
        edgefit_mcu::RamFlash<'a>,
        FakeClock,
        edgefit_mcu::NoPower,
        edgefit_mcu::NoStackMeter,
        edgefit_mcu::TimestampPin<RecordingPin>,
    >;
    let run = |fw: &mut EnergyFw<'_>, host: &mut Host| -> String {
        while !host.link.to_dev.borrow().is_empty() {
            fw.poll().unwrap();
        }
        fw.poll().unwrap();
        let bytes = std::mem::take(&mut *host.link.from_dev.borrow_mut());
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(fw.active_plan().map(|p| p.plan_id), Some(0x65));

    host.send_raw(b"name%");
    let text = run(&mut fw, &mut host);
    assert!(
        text.starts_with("m-timestamp-mode-energy\r\nm-init-done\r\n"),
        "{text}"
    );
    host.send_raw(b"db load 300%");
    run(&mut fw, &mut host);
    let image = Rng(5).bytes(300);
    for chunk in image.chunks(26) {
        let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
        host.send_raw(format!("db {hex}%").as_bytes());
        run(&mut fw, &mut host);
    }
    pin.0.borrow_mut().clear();
    host.send_raw(b"infer 2 1%");
    let text = run(&mut fw, &mut host);
    // One pulse (low, then high) at each end of the timed loop.
    assert_eq!(*pin.0.borrow(), [false, true, false, true]);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[..3],
        ["m-warmup-start-1", "m-warmup-done", "m-infer-start-2"]
    );
    assert!(
        lines[3].starts_with("m-lap-us-") && lines[4].starts_with("m-lap-us-"),
        "{lines:?}"
    );
    assert_eq!(lines[5], "m-infer-done");
    assert!(lines[6].starts_with("m-results-["));
    assert_eq!(lines[7], "m-ready");
    pin.0.borrow_mut().clear();
    host.send_raw(b"timestamp%");
    assert_eq!(run(&mut fw, &mut host), "m-ready\r\n");
    assert_eq!(*pin.0.borrow(), [false, true]);
}

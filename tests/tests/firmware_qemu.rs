//! The Cortex-M4 firmware on QEMU's mps2-an386, end to end: build it with
//! `scripts/firmware.sh`, boot it, flash the bundled int8 plans over the
//! emulated UART (a TCP socket) with `edgefit flash`, bench them with
//! `edgefit bench`, and break the link in the ways a real one breaks.
//!
//! Needs `qemu-system-arm` and Debian's Rust toolchain (`scripts/test.sh`
//! installs both); the tests fail, not skip, when they are missing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use edgefit::device::flash::flash_plan;
use edgefit::device::{Client, ClientConfig, ClientError, Port};
use edgefit_e2e::{edgefit_bin, model, repo_root};
use edgefit_proto::{plan_chunks, ErrorCode, HostMsg};
use serde_json::Value;

/// Benchmarked images per bundled plan.
const BENCH_IMAGES: usize = 500;

fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware-qemu");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The QEMU firmware ELF, built once per test run.
fn firmware_elf() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/firmware.sh"))
            .args(["build", "mps2-an386"])
            .output()
            .expect("run scripts/firmware.sh");
        assert!(
            out.status.success(),
            "firmware build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let elf = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(elf.is_file(), "firmware.sh printed no ELF path: {stdout}");
        elf
    })
}

/// int8 plans of the bundled models for a microcontroller (`--no-scratch`).
fn plan(name: &str) -> PathBuf {
    static PLANS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (resnet, vgg) = PLANS.get_or_init(|| {
        let dir = scratch_dir();
        let compile = |model_name: &str| {
            let out = dir.join(format!("{model_name}-int8.efp"));
            let src = model(&format!("{model_name}.onnx"));
            let o = Command::new(edgefit_bin())
                .args([
                    "compile",
                    src.to_str().unwrap(),
                    "--precision",
                    "int8",
                    "--no-scratch",
                    "-o",
                ])
                .arg(&out)
                .output()
                .expect("run edgefit compile");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out
        };
        (compile("resnet-fmnist"), compile("vgg-fmnist"))
    });
    match name {
        "resnet" => resnet.clone(),
        _ => vgg.clone(),
    }
}

/// A free local TCP port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// QEMU running the firmware, UART0 on a local TCP port; killed on drop.
struct Qemu {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Plan copies `edgefit flash` keeps (isolated per board).
    cache: PathBuf,
}

impl Qemu {
    fn boot(name: &str) -> Qemu {
        let port = free_port();
        let log = scratch_dir().join(format!("{name}-qemu.log"));
        let cache = scratch_dir().join(format!("{name}-cache"));
        let _ = std::fs::remove_dir_all(&cache);
        let child = Command::new("qemu-system-arm")
            .args([
                "-machine",
                "mps2-an386",
                "-cpu",
                "cortex-m4",
                "-nographic",
                "-monitor",
                "none",
            ])
            .args(["-icount", "shift=0"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            // nodelay: QEMU writes the UART's bytes one at a time; without it
            // Nagle and delayed ACKs add ~40 ms to every answer.
            .arg(format!(
                "tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on"
            ))
            .arg("-kernel")
            .arg(firmware_elf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("qemu log"))
            .spawn()
            .expect("start qemu-system-arm (apt-get install qemu-system-arm)");
        let qemu = Qemu {
            child,
            port,
            log,
            cache,
        };
        // Wait until QEMU listens.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "QEMU did not open its UART socket"
            );
            thread::sleep(Duration::from_millis(100));
        }
        // That probe connection was accepted and closed; QEMU listens again.
        thread::sleep(Duration::from_millis(200));
        qemu
    }

    fn port_arg(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    /// `edgefit ARGS... --port THIS`, with the plan cache isolated.
    fn edgefit(&self, args: &[&str]) -> Output {
        self.edgefit_via(&self.port_arg(), args)
    }

    fn edgefit_via(&self, port: &str, args: &[&str]) -> Output {
        Command::new(edgefit_bin())
            .args(args)
            .args(["--port", port])
            .env("XDG_CACHE_HOME", &self.cache)
            .output()
            .expect("run edgefit")
    }

    fn client(&self) -> Client {
        let port: Port = self.port_arg().parse().expect("port");
        let link = edgefit::device::open(&port, Duration::from_secs(5)).expect("connect");
        Client::connect(link, ClientConfig::default()).expect("hello")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{what}: exit status");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    err
}

fn bench_json(qemu: &Qemu, limit: usize, extra: &[&str]) -> Value {
    let out_file = scratch_dir().join(format!("bench-{}-{limit}.json", qemu.port));
    let limit = limit.to_string();
    let mut args = vec![
        "bench",
        "--limit",
        &limit,
        "--out",
        out_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&qemu.edgefit(&args), "edgefit bench");
    serde_json::from_str(&std::fs::read_to_string(&out_file).expect("bench json")).expect("json")
}

/// Predictions of the host engine for the first `n` test images.
fn host_accuracy(plan: &Path, n: usize) -> f64 {
    let out = Command::new(edgefit_bin())
        .args([
            "evaluate",
            plan.to_str().unwrap(),
            "--limit",
            &n.to_string(),
            "--json",
        ])
        .output()
        .expect("edgefit evaluate");
    let v: Value = serde_json::from_str(&ok(&out, "edgefit evaluate")).expect("json");
    v["accuracy"].as_f64().expect("accuracy")
}

fn plan_header_id(plan: &Path) -> u64 {
    let bytes = std::fs::read(plan).expect("plan");
    edgefit_engine::Plan::parse(&bytes).expect("plan").plan_id() as u64
}

fn check_bench(v: &Value, plan: &Path, n: usize) {
    assert_eq!(v["schema"], "edgefit.bench.v1");
    assert_eq!(v["device"]["board"], "mps2-an386");
    assert_eq!(v["samples"].as_u64(), Some(n as u64));
    assert_eq!(v["plan"]["plan_id"].as_u64(), Some(plan_header_id(plan)));
    // Every prediction and every output byte equal the host engine's.
    assert_eq!(
        v["agreement_with_host"].as_f64(),
        Some(1.0),
        "{}",
        v["records"]
    );
    assert_eq!(v["outputs_identical"].as_u64(), Some(n as u64));
    let accuracy = v["accuracy"].as_f64().expect("accuracy");
    assert_eq!(
        accuracy,
        host_accuracy(plan, n),
        "device and host accuracy differ"
    );
    assert!(accuracy > 0.85, "accuracy {accuracy}");
    // Summary figures: present and plausible.
    let arena = v["plan"]["arena_bytes"].as_u64().expect("plan arena");
    assert_eq!(v["arena_bytes_used"]["value"].as_u64(), Some(arena));
    let stack = v["stack_high_water_bytes"]["value"]
        .as_u64()
        .expect("stack measured");
    assert!(
        (256..64 * 1024).contains(&stack),
        "stack high-water {stack}"
    );
    let instr = v["instructions_per_inference"]["value"]
        .as_f64()
        .expect("instructions");
    let macs = v["plan"]["macs"].as_f64().expect("macs");
    assert!(
        instr > macs * 0.5 && instr < macs * 40.0,
        "{instr} instructions for {macs} MACs"
    );
    assert_eq!(
        v["energy_uj_per_inference"]["value"],
        Value::Null,
        "QEMU has no power sensor"
    );
    assert!(v["energy_uj_per_inference"]["source"]
        .as_str()
        .unwrap_or_default()
        .contains("not measured"));
}

#[test]
fn qemu_flash_and_bench_bundled_int8_plans() {
    let qemu = Qemu::boot("bench");
    for name in ["resnet", "vgg"] {
        let plan = plan(name);
        let text = ok(
            &qemu.edgefit(&["flash", plan.to_str().unwrap()]),
            "edgefit flash",
        );
        assert!(text.contains("now active"), "{text}");
        let v = bench_json(&qemu, BENCH_IMAGES, &[]);
        check_bench(&v, &plan, BENCH_IMAGES);
        eprintln!(
            "{name}: accuracy {:.4}, {:.0} instructions/inference, {:.2} per MAC, stack {} B, arena {} B",
            v["accuracy"],
            v["instructions_per_inference"]["value"].as_f64().unwrap_or(0.0),
            v["instructions_per_mac"]["value"].as_f64().unwrap_or(0.0),
            v["stack_high_water_bytes"]["value"],
            v["arena_bytes_used"]["value"],
        );
    }
    // An int8 softmax (a PyTorch export that ends in one) on RGB inputs from
    // a NumPy array: the Cortex-M4's bytes equal the host's portable engine.
    let softmax = scratch_dir().join("softmax-int8.efp");
    let src = repo_root().join("tests/conformance/exporters/torchscript13_resnet_view/model.onnx");
    ok(
        &Command::new(edgefit_bin())
            .args(["compile", src.to_str().unwrap(), "--calib", "synthetic"])
            .args(["--calib-samples", "8", "--no-scratch", "-o"])
            .arg(&softmax)
            .output()
            .unwrap(),
        "compile the softmax plan",
    );
    ok(
        &qemu.edgefit(&["flash", softmax.to_str().unwrap()]),
        "edgefit flash",
    );
    let npy = |shape: &[u64], v: &[u8]| edgefit_data::npy::npy_bytes(shape, v).unwrap();
    let data = scratch_dir().join("rgb-npy");
    std::fs::create_dir_all(&data).unwrap();
    let pixels: Vec<u8> = (0..20 * 12 * 12 * 3)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    std::fs::write(data.join("x.npy"), npy(&[20, 12, 12, 3], &pixels)).unwrap();
    std::fs::write(
        data.join("y.npy"),
        edgefit_data::npy::npy_bytes(&[20], &[0i64; 20]).unwrap(),
    )
    .unwrap();
    let v = bench_json(&qemu, 20, &["--data", data.to_str().unwrap()]);
    assert_eq!(
        v["outputs_identical"], 20,
        "int8 softmax differs on the Cortex-M4"
    );
    assert!(!qemu.log_text().contains("panicked"), "{}", qemu.log_text());
}

/// Tiled plans (format version 2) flash and bench on the Cortex-M4: every
/// output byte equals the host engine's, the firmware reports the tiled
/// arena as the one it reserved, and the instructions per inference sit
/// next to the untiled plan's.
#[test]
fn qemu_runs_tiled_plans_bit_exactly() {
    const N: usize = 100;
    let qemu = Qemu::boot("tiled");
    for (name, budget) in [("resnet", "16KiB"), ("vgg", "8KiB")] {
        let model_name = format!("{name}-fmnist");
        let tiled = scratch_dir().join(format!("{model_name}-{budget}.efp"));
        let src = model(&format!("{model_name}.onnx"));
        let text = ok(
            &Command::new(edgefit_bin())
                .args(["compile", src.to_str().unwrap(), "--no-scratch"])
                .args(["--ram-budget", budget, "-o"])
                .arg(&tiled)
                .output()
                .unwrap(),
            "compile a tiled plan",
        );
        assert!(text.contains("tiled: layers"), "{text}");
        let mut instructions = vec![];
        for plan in [plan(name), tiled.clone()] {
            ok(
                &qemu.edgefit(&["flash", plan.to_str().unwrap()]),
                "edgefit flash",
            );
            let v = bench_json(&qemu, N, &[]);
            check_bench(&v, &plan, N);
            instructions.push(
                v["instructions_per_inference"]["value"]
                    .as_f64()
                    .expect("instructions"),
            );
            let header = edgefit_engine::Plan::parse(&std::fs::read(&plan).unwrap())
                .unwrap()
                .header()
                .version;
            eprintln!(
                "{name} (format v{header}): arena {} B, {:.0} instructions/inference",
                v["arena_bytes_used"]["value"],
                instructions.last().unwrap()
            );
        }
        let tiled_arena = edgefit_engine::Plan::parse(&std::fs::read(&tiled).unwrap())
            .unwrap()
            .arena_size();
        assert!(tiled_arena <= 16 << 10, "{name}: {tiled_arena}");
        // The same MACs: the extra instructions are the bands' calls and
        // row moves, not recomputation.
        assert!(
            instructions[1] < instructions[0] * 1.5,
            "{name}: {instructions:?}"
        );
    }
    assert!(!qemu.log_text().contains("panicked"), "{}", qemu.log_text());
}

/// What a forwarding proxy does to host→device bytes after `after` bytes.
#[derive(Clone, Copy)]
enum Fault {
    /// Close both directions.
    Drop,
    /// Flip a bit in every 97th byte (never making or removing a 0x00
    /// delimiter), so every frame from then on fails its CRC.
    Corrupt,
}

/// Forwards one connection from a local port to the device, applying `fault`.
fn proxy(device_port: u16, after: usize, fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        let Ok((host, _)) = listener.accept() else {
            return;
        };
        let Ok(device) = TcpStream::connect(("127.0.0.1", device_port)) else {
            return;
        };
        let (mut host_r, mut dev_w) = (
            host.try_clone().expect("clone"),
            device.try_clone().expect("clone"),
        );
        let (mut dev_r, mut host_w) = (device, host);
        let back = thread::spawn(move || {
            let _ = std::io::copy(&mut dev_r, &mut host_w);
            let _ = host_w.shutdown(Shutdown::Both);
        });
        let mut seen = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            let n = match host_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            match fault {
                Fault::Drop if seen + n > after => {
                    let keep = after.saturating_sub(seen);
                    let _ = dev_w.write_all(&chunk[..keep]);
                    break;
                }
                Fault::Corrupt => {
                    for (i, b) in chunk.iter_mut().enumerate() {
                        let at = seen + i;
                        if at > after && at.is_multiple_of(97) && *b > 1 {
                            *b ^= if *b == 2 { 4 } else { 1 };
                        }
                    }
                }
                Fault::Drop => {}
            }
            seen += n;
            if dev_w.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = dev_w.shutdown(Shutdown::Both);
        let _ = host_r.shutdown(Shutdown::Both);
        let _ = back.join();
    });
    port
}

/// The active plan must still be the ResNet one, and still give the host's outputs.
fn still_runs(qemu: &Qemu, resnet: &Path, what: &str) {
    let v = bench_json(qemu, 20, &[]);
    assert_eq!(
        v["plan"]["plan_id"].as_u64(),
        Some(plan_header_id(resnet)),
        "after {what}, the device no longer runs its previous plan"
    );
    assert_eq!(v["outputs_identical"].as_u64(), Some(20), "after {what}");
}

#[test]
fn qemu_bad_links_keep_the_previous_plan() {
    let qemu = Qemu::boot("faults");
    let resnet = plan("resnet");
    let vgg = plan("vgg");
    let vgg_len = std::fs::metadata(&vgg).expect("vgg plan").len() as usize;
    ok(
        &qemu.edgefit(&["flash", resnet.to_str().unwrap()]),
        "flash resnet",
    );
    still_runs(&qemu, &resnet, "the first flash");

    // 1. The link drops in the middle of a plan transfer.
    let port = proxy(qemu.port, vgg_len / 2, Fault::Drop);
    let err = failed(
        &qemu.edgefit_via(
            &format!("tcp:127.0.0.1:{port}"),
            &["flash", vgg.to_str().unwrap()],
        ),
        "flash over a dropped link",
    );
    assert!(err.contains("link closed"), "{err}");
    assert!(err.contains("keeps its previous plan"), "{err}");
    still_runs(&qemu, &resnet, "a dropped link");

    // 2. Frames damaged on the way: the device reports bad CRCs, the host
    //    resends, gives up, and says why.
    let port = proxy(qemu.port, vgg_len / 3, Fault::Corrupt);
    let err = failed(
        &qemu.edgefit_via(
            &format!("tcp:127.0.0.1:{port}"),
            &["flash", vgg.to_str().unwrap()],
        ),
        "flash over a corrupting link",
    );
    assert!(err.contains("damaged frames"), "{err}");
    assert!(err.contains("CRC") || err.contains("bad frame"), "{err}");
    still_runs(&qemu, &resnet, "corrupted chunks");

    // 3. Garbage on the line (zeros included) between sessions.
    {
        let mut raw = TcpStream::connect(("127.0.0.1", qemu.port)).expect("connect");
        let mut x = 0x1234_5678u32;
        let garbage: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        raw.write_all(&garbage).expect("write garbage");
        thread::sleep(Duration::from_millis(500));
    }
    still_runs(&qemu, &resnet, "garbage bytes");

    // 4. An image whose bytes do not match the CRC announced in PlanBegin
    //    (a chunk corrupted before its frame CRC was computed).
    {
        let mut client = qemu.client();
        let image = std::fs::read(&vgg).expect("vgg");
        let mut bad = image.clone();
        bad[image.len() / 2] ^= 0x40;
        let begin = HostMsg::plan_begin(1, &image).expect("begin");
        client.expect_ack(&begin).expect("PlanBegin");
        for chunk in plan_chunks(&bad) {
            client.expect_ack(&chunk).expect("chunk");
        }
        match client.request(&HostMsg::PlanCommit) {
            Err(ClientError::Device {
                code: ErrorCode::PlanCrcMismatch,
                ..
            }) => {}
            other => panic!("commit of a corrupted image: {other:?}"),
        }
    }
    still_runs(&qemu, &resnet, "a plan CRC mismatch");

    // 5. A plan bigger than the slot: the host refuses it before sending, with
    //    both sizes; the device refuses one that claims to be.
    // (QEMU's UART takes one connection at a time: each session ends
    // before the next starts.)
    let slot = {
        let slot = qemu.client().device().plan_slot_bytes;
        let huge = big_plan(slot as usize + 4096);
        let path = scratch_dir().join("huge.efp");
        std::fs::write(&path, &huge).expect("write huge plan");
        let err = failed(
            &qemu.edgefit(&["flash", path.to_str().unwrap()]),
            "flash too big",
        );
        assert!(
            err.contains(&huge.len().to_string()) && err.contains(&slot.to_string()),
            "{err}"
        );
        let mut client = qemu.client();
        match client.request(&HostMsg::PlanBegin {
            plan_id: 9,
            total_size: slot + 1,
            crc32: 0,
        }) {
            Err(ClientError::Device {
                code: ErrorCode::PlanTooLarge,
                detail,
                ..
            }) => assert_eq!(detail, slot),
            other => panic!("PlanBegin past the slot: {other:?}"),
        }
        // And through the library's own check.
        match flash_plan(&mut client, &huge, &mut |_, _| {}) {
            Err(e) => assert!(e.to_string().contains(&slot.to_string()), "{e}"),
            Ok(_) => panic!("a plan bigger than the slot was flashed"),
        }
        slot
    };
    assert!(slot > 0);
    still_runs(&qemu, &resnet, "a plan bigger than the slot");

    // After all that, a good transfer still works.
    ok(
        &qemu.edgefit(&["flash", vgg.to_str().unwrap()]),
        "flash vgg",
    );
    let v = bench_json(&qemu, 10, &[]);
    assert_eq!(v["plan"]["plan_id"].as_u64(), Some(plan_header_id(&vgg)));
    assert!(!qemu.log_text().contains("panicked"), "{}", qemu.log_text());
}

/// A valid int8 plan of at least `bytes` bytes (one big dense layer).
fn big_plan(bytes: usize) -> Vec<u8> {
    use edgefit_engine::{DType, OpDesc, OpKind, PlanBuilder, Precision, Quant};
    let inputs = 1024usize;
    let outputs = bytes / inputs + 1;
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, inputs as u32], 0, Quant::new(0.05, 0));
    let y = b.add_activation(
        DType::I8,
        &[1, outputs as u32],
        inputs as u32,
        Quant::new(0.1, 0),
    );
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = b.add_weights_i8(
        &[outputs as u32, inputs as u32],
        &vec![1i8; inputs * outputs],
    );
    op.multipliers = b.add_i32_array(&vec![1 << 30; outputs]);
    op.shifts = b.add_i32_array(&vec![-8; outputs]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size((inputs + outputs) as u32);
    b.finish_checked().expect("big plan")
}

/// The engine's own on-target check: hundreds of random int8 conv and dense
/// layers through the portable and the Cortex-M4 DSP kernels, byte for byte.
#[test]
fn qemu_dsp_kernels_equal_portable_on_cortex_m4() {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/firmware.sh"))
        .args(["build", "engine-check"])
        .env_remove("EDGEFIT_CHECK_PLANS")
        .output()
        .expect("run scripts/firmware.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let elf = stdout.lines().last().unwrap_or_default().trim().to_owned();
    let run = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "mps2-an386",
            "-cpu",
            "cortex-m4",
            "-nographic",
            "-monitor",
            "none",
        ])
        .args(["-icount", "shift=0"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-kernel", &elf])
        .stdin(Stdio::null())
        .output()
        .expect("run qemu-system-arm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "engine check failed on the Cortex-M4:\n{text}"
    );
    assert!(
        text.contains("PASS") && !text.contains("MISMATCH"),
        "{text}"
    );
}

/// `edgefit compare --port`: every int8 variant that fits the board is
/// flashed and benched on it; its rows carry the latency measured there,
/// the other profile's rows stay estimated.
#[test]
fn qemu_compare_measures_latency_on_the_device() {
    let qemu = Qemu::boot("compare");
    let out = scratch_dir().join("compare");
    let _ = std::fs::remove_dir_all(&out);
    let text = ok(
        &qemu.edgefit(&[
            "compare",
            "--precisions",
            "int8",
            "--sparsity",
            "0",
            "--prune-channels",
            "0",
            "--limit",
            "200",
            "--calib-samples",
            "50",
            "--device-limit",
            "5",
            "--profiles",
            "qemu-mps2-an386,nrf52840-dk",
            "--out",
            out.to_str().unwrap(),
        ]),
        "compare --port",
    );
    assert!(text.contains("On qemu-mps2-an386,"), "{text}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let source = r["latency_source"].as_str().unwrap();
        if r["profile"] == "qemu-mps2-an386" {
            assert!(source.starts_with("measured on mps2-an386"), "{source}");
            assert!(r["device"].as_str().unwrap().contains("mps2-an386"));
            // One instruction per ns: ResNet ~18.3 M instructions, VGG ~9.3 M.
            let ms = r["latency_ms"].as_f64().unwrap();
            assert!((5.0..40.0).contains(&ms), "{ms} ms");
        } else {
            assert!(source.starts_with("estimated"), "{source}");
            assert!(r["device"].is_null());
        }
    }

    // The plans stay in --out: flash one, bench it, and `edgefit report`
    // puts the device's figures into a comparison made without --port.
    let plain = scratch_dir().join("compare-plain");
    let _ = std::fs::remove_dir_all(&plain);
    let o = Command::new(edgefit_bin())
        .args([
            "compare",
            "--precisions",
            "int8",
            "--sparsity",
            "0",
            "--prune-channels",
            "0",
            "--limit",
            "200",
            "--calib-samples",
            "50",
            "--profiles",
            "qemu-mps2-an386,nrf52840-dk",
            "--out",
        ])
        .arg(&plain)
        .output()
        .expect("run edgefit compare");
    ok(&o, "compare");
    let resnet = plain.join("plans/resnet-fmnist-int8.efp");
    ok(&qemu.edgefit(&["flash", resnet.to_str().unwrap()]), "flash");
    let bench = plain.join("bench.json");
    ok(
        &qemu.edgefit(&[
            "bench",
            resnet.to_str().unwrap(),
            "--limit",
            "5",
            "--out",
            bench.to_str().unwrap(),
        ]),
        "bench",
    );
    let merged = plain.join("merged");
    let o = Command::new(edgefit_bin())
        .arg("report")
        .arg(plain.join("results.json"))
        .arg(&bench)
        .arg("--out")
        .arg(&merged)
        .output()
        .expect("run edgefit report");
    ok(&o, "report with a bench file");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("results.json")).unwrap())
            .unwrap();
    let measured: Vec<&Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["device"].is_string())
        .collect();
    assert_eq!(measured.len(), 1, "only the benched variant on its board");
    assert_eq!(measured[0]["model"], "resnet-fmnist");
    assert_eq!(measured[0]["profile"], "qemu-mps2-an386");
    assert!(measured[0]["latency_source"]
        .as_str()
        .unwrap()
        .starts_with("measured on mps2-an386"));
}

/// A client that speaks to the DUT as the MLPerf Tiny runner does
/// (mlcommons/tiny `benchmark/runner`: `serial_device.py` and
/// `device_under_test.py`): `cmd%` out; lines split at `\n` with `\r` and
/// `\0` dropped; an answer ends at the line containing `m-ready`; images go
/// as `db load N` then `db` commands of 31 hex bytes; results and laps are
/// read with the runner's regular expressions.
struct Runner {
    stream: TcpStream,
    pending: Vec<u8>,
    results: regex::Regex,
    lap: regex::Regex,
}

impl Runner {
    fn connect(qemu: &Qemu) -> Runner {
        let stream = TcpStream::connect(("127.0.0.1", qemu.port)).expect("connect to the UART");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Runner {
            stream,
            pending: vec![],
            results: regex::Regex::new(r"^m-results-\[([^]]+)\]$").unwrap(),
            lap: regex::Regex::new(r"^m-lap-us-([0-9]+)$").unwrap(),
        }
    }

    fn send_command(&mut self, command: &str) -> Vec<String> {
        self.stream
            .write_all(format!("{command}%").as_bytes())
            .unwrap();
        let mut lines = vec![];
        loop {
            while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=nl).collect();
                let line: String = String::from_utf8_lossy(&raw)
                    .chars()
                    .filter(|c| !"\n\r\0".contains(*c))
                    .collect();
                let end = line.contains("m-ready");
                if !line.is_empty() {
                    lines.push(line);
                }
                if end {
                    return lines;
                }
            }
            let mut buf = [0u8; 4096];
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("no answer to {command}: {e} ({lines:?})"));
            assert!(n > 0, "the DUT closed the link during {command}");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    fn load(&mut self, data: &[u8]) -> Vec<String> {
        self.send_command(&format!("db load {}", data.len()));
        let mut last = vec![];
        for chunk in data.chunks(31) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            last = self.send_command(&format!("db {hex}"));
        }
        last
    }

    /// `_gather_infer_results`: the results vector and the elapsed µs.
    fn infer(&mut self, n: usize, warmups: usize) -> (Vec<f64>, Option<u64>) {
        let lines = self.send_command(&format!("infer {n} {warmups}"));
        let mut results = vec![];
        let mut laps = vec![];
        for l in &lines {
            if let Some(c) = self.results.captures(l) {
                results = c[1]
                    .split(',')
                    .filter(|x| !x.trim().is_empty())
                    .map(|x| x.trim().parse().expect("float result"))
                    .collect();
            } else if let Some(c) = self.lap.captures(l) {
                laps.push(c[1].parse::<u64>().unwrap());
            }
        }
        let elapsed = (laps.len() == 2).then(|| laps[1] - laps[0]);
        (results, elapsed)
    }
}

fn argmax_f64(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[test]
fn qemu_answers_the_mlperf_tiny_runner() {
    let qemu = Qemu::boot("mlperf");
    let plan = plan("resnet");
    ok(
        &qemu.edgefit(&["flash", plan.to_str().unwrap()]),
        "edgefit flash",
    );
    // The dataset in the runner's layout, from the bundled test split.
    let datasets = scratch_dir().join("mlperf-datasets");
    let _ = std::fs::remove_dir_all(&datasets);
    let text = ok(
        &Command::new(edgefit_bin())
            .args(["mlperf-dataset", plan.to_str().unwrap(), "--limit", "200"])
            .arg("-o")
            .arg(&datasets)
            .output()
            .unwrap(),
        "edgefit mlperf-dataset",
    );
    assert!(text.contains("200 image(s) of 784 bytes"), "{text}");
    let truth = std::fs::read_to_string(datasets.join("ic01/y_labels.csv")).unwrap();
    let rows: Vec<Vec<&str>> = truth.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 200);
    assert!(rows
        .iter()
        .all(|r| r.len() == 5 && r[1] == "10" && r[3] == "784"));

    let mut runner = Runner::connect(&qemu);
    // init_dut: name, then the profile's model and version.
    let name = runner.send_command("name");
    let name_re = regex::Regex::new(r"^m-(name)-dut-\[([^]]+)]$").unwrap();
    assert!(name.iter().any(|l| name_re.is_match(l)), "{name:?}");
    assert!(name.contains(&"m-timestamp-mode-performance".to_string()));
    let profile = runner.send_command("profile");
    assert!(
        profile.contains(&"m-model-[ic01]".to_string()),
        "{profile:?}"
    );

    // Accuracy mode (tests_accuracy.yaml: download, infer 1 0 per file):
    // top-1 equals `edgefit evaluate` of the same plan on the same images,
    // prediction by prediction.
    let predictions = scratch_dir().join("mlperf-evaluate.txt");
    let eval: Value = serde_json::from_str(&ok(
        &Command::new(edgefit_bin())
            .args([
                "evaluate",
                plan.to_str().unwrap(),
                "--limit",
                "200",
                "--json",
            ])
            .arg("--predictions")
            .arg(&predictions)
            .output()
            .unwrap(),
        "edgefit evaluate",
    ))
    .unwrap();
    let host: Vec<usize> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let mut correct = 0;
    for (i, row) in rows.iter().enumerate() {
        let data = std::fs::read(datasets.join("ic01").join(row[0])).unwrap();
        let done = runner.load(&data);
        assert!(done.contains(&"m-load-done".to_string()), "{done:?}");
        let (results, _) = runner.infer(1, 0);
        assert_eq!(results.len(), 10, "image {i}");
        let predicted = argmax_f64(&results);
        assert_eq!(predicted, host[i], "image {i}: device {results:?}");
        correct += usize::from(predicted == row[2].parse::<usize>().unwrap());
    }
    let top1 = correct as f64 / 200.0;
    assert_eq!(top1, eval["accuracy"].as_f64().unwrap());
    eprintln!("MLPerf Tiny accuracy mode, 200 images: top-1 {top1}");

    // Performance mode (tests_performance.yaml: five windows of download,
    // infer 20 5): the median time per inference is the instruction count
    // edgefit's own bench measures for the plan (virtual time, 1 ns per
    // instruction), within the per-inference input copy.
    let mut per_inference = vec![];
    for row in rows.iter().take(5) {
        let data = std::fs::read(datasets.join("ic01").join(row[0])).unwrap();
        runner.load(&data);
        let (results, elapsed) = runner.infer(20, 5);
        assert_eq!(results.len(), 10);
        per_inference.push(elapsed.expect("two laps") as f64 / 20.0);
    }
    per_inference.sort_by(f64::total_cmp);
    let median = per_inference[2];

    // Bad input on the real link: answered, and the plan stays.
    let l = runner.send_command("infer 0");
    assert!(l.iter().any(|s| s.starts_with("e-[")), "{l:?}");
    let l = runner.send_command(&"db ".repeat(40));
    assert!(l.iter().any(|s| s.contains("longer than 80")), "{l:?}");
    assert_eq!(l.last().map(String::as_str), Some("m-ready"));
    drop(runner);

    // edgefit's protocol again on the same link, without a reset.
    let v = bench_json(&qemu, 5, &[]);
    assert_eq!(v["plan"]["plan_id"].as_u64(), Some(plan_header_id(&plan)));
    let bench_us = v["latency"]["us"]["mean_us"].as_f64().unwrap();
    eprintln!(
        "MLPerf Tiny performance mode: median {median:.2} us per inference \
         ({:.3} inf./s); edgefit bench {bench_us:.2} us",
        1e6 / median
    );
    assert!(
        (median - bench_us).abs() / bench_us < 1e-3,
        "runner {median} us vs bench {bench_us} us"
    );
    assert!(!qemu.log_text().contains("panicked"), "{}", qemu.log_text());
}

//! The Linux agent end to end: the real `edgefit-agent` binary on a loopback
//! port (and, cross-built, under qemu-aarch64), driven by the host's client
//! and CLI. Plans and tract artifacts are compiled from the bundled models.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use edgefit::data::{bundled_data_dir, load_idx_dataset, Dataset};
use edgefit::device::bench::{bench, BenchOptions, BenchReport};
use edgefit::device::flash::flash_plan;
use edgefit::device::{Client, ClientConfig, ClientError, Port};
use edgefit_e2e::{agent_bin, edgefit, model, repo_root, stderr};
use edgefit_proto::{
    decode_frame, encode_frame_vec, sample_parts, DeviceMsg, EngineKind, ErrorCode, FrameReader,
    HostMsg, MAX_FRAME,
};

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent");
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `edgefit compile` once per variant and test run.
fn variant(name: &str, args: &[&str]) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = scratch().join(name);
    if !out.exists() {
        let mut all: Vec<&str> = args.to_vec();
        let o = out.to_str().expect("utf-8 path");
        all.extend(["-o", o]);
        let r = edgefit(&all);
        assert!(r.status.success(), "compile {name}: {}", stderr(&r));
    }
    out
}

fn resnet_int8() -> PathBuf {
    let m = model("resnet-fmnist.onnx");
    variant(
        "resnet-int8.efp",
        &["compile", m.to_str().unwrap(), "--calib-samples", "200"],
    )
}

fn vgg_int8() -> PathBuf {
    let m = model("vgg-fmnist.onnx");
    variant(
        "vgg-int8.efp",
        &["compile", m.to_str().unwrap(), "--calib-samples", "200"],
    )
}

fn resnet_tract(precision: &str) -> PathBuf {
    let m = model("resnet-fmnist.onnx");
    variant(
        &format!("resnet-{precision}.eftm"),
        &[
            "compile",
            m.to_str().unwrap(),
            "--precision",
            precision,
            "--target",
            "tract",
        ],
    )
}

fn test_data(limit: usize) -> Dataset {
    let mut d = load_idx_dataset(&bundled_data_dir(), "t10k").expect("bundled test data");
    d.truncate(limit);
    d
}

/// A running agent process; killed on drop.
struct AgentProc {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl AgentProc {
    /// `edgefit-agent serve` (or `program` with `prefix` args, for qemu)
    /// with a store and extra args; waits until it listens.
    fn start_with(
        program: &Path,
        prefix: &[&str],
        name: &str,
        store: &Path,
        extra: &[&str],
    ) -> Self {
        let port = free_port();
        let log = scratch().join(format!("{name}-{port}.log"));
        let child = Command::new(program)
            .args(prefix)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--store")
            .arg(store)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start edgefit-agent");
        let mut agent = AgentProc { child, port, log };
        let start = Instant::now();
        // The agent logs its address once it listens. (A probe connection
        // would open a session, and a client right after it could find the
        // agent still busy with it.)
        let listening = format!(" on 127.0.0.1:{port},");
        while !agent.log_text().contains(&listening) {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("the agent exited ({status}): {}", agent.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the agent did not listen: {}",
                agent.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    fn start(name: &str, store: &Path, extra: &[&str]) -> Self {
        Self::start_with(&agent_bin(), &[], name, store, extra)
    }

    fn port_arg(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    fn client_with(&self, token: Option<&[u8]>) -> Result<Client, ClientError> {
        let port: Port = self.port_arg().parse().expect("port");
        let link = edgefit::device::open(&port, Duration::from_secs(5)).expect("connect");
        Client::connect(
            link,
            ClientConfig {
                token: token.map(<[u8]>::to_vec),
                run_timeout: Duration::from_secs(300),
                ..ClientConfig::default()
            },
        )
    }

    fn client(&self) -> Client {
        self.client_with(None).expect("hello")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fresh_store(name: &str) -> PathBuf {
    let d = scratch().join(format!("{name}-store"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn flash(client: &mut Client, path: &Path) {
    let image = std::fs::read(path).expect("read variant");
    flash_plan(client, &image, &mut |_, _| {}).expect("flash");
}

/// `bench` over IDX images as the bundled models take them (gray / 255).
fn bench_idx(
    client: &mut Client,
    image: &[u8],
    data: &Dataset,
    options: BenchOptions,
) -> Result<BenchReport, edgefit::device::bench::BenchError> {
    let source = data.to_source(Path::new("bundled test split"));
    let recipe = edgefit::data::Recipe::plain(edgefit::data::ChannelOrder::Gray);
    let shape = [1, 1, data.rows, data.cols];
    let eval = edgefit::evaluate::EvalData {
        source: &source,
        recipe: &recipe,
        input_shape: &shape,
        on_bad: edgefit::data::OnBadImage::Fail,
    };
    bench(client, image, &eval, options, &mut |_, _| {})
}

fn run_bench(
    client: &mut Client,
    path: &Path,
    data: &Dataset,
    engine: Option<EngineKind>,
) -> BenchReport {
    let image = std::fs::read(path).expect("read variant");
    bench_idx(
        client,
        &image,
        data,
        BenchOptions {
            compare_outputs: true,
            engine,
        },
    )
    .expect("bench")
}

/// `edgefit evaluate X --json`'s accuracy.
fn evaluate_accuracy(path: &Path) -> f64 {
    let out = edgefit(&["evaluate", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("evaluate JSON");
    v["accuracy"].as_f64().expect("accuracy")
}

/// Every sample once, in order: no record lost or duplicated.
fn assert_sequence(r: &BenchReport, n: usize) {
    assert_eq!(r.samples, n);
    assert!(
        r.records.iter().enumerate().all(|(i, rec)| rec.index == i),
        "records out of sequence"
    );
}

#[test]
fn loopback_benches_all_test_images_of_both_plans() {
    let data = test_data(10_000);
    let agent = AgentProc::start("loopback", &fresh_store("loopback"), &[]);
    let mut client = agent.client();
    assert_eq!(client.device().engines[0], "native");
    for plan in [resnet_int8(), vgg_int8()] {
        flash(&mut client, &plan);
        let r = run_bench(&mut client, &plan, &data, None);
        assert_sequence(&r, 10_000);
        assert_eq!(r.engine, "native");
        assert_eq!(
            r.agreement_with_host, 1.0,
            "predictions differ from the host engine"
        );
        assert_eq!(r.outputs_identical, Some(10_000), "output bytes differ");
        assert_eq!(
            r.accuracy,
            evaluate_accuracy(&plan),
            "accuracy differs from evaluate"
        );
        assert!(r.peak_rss_bytes.value.is_some_and(|b| b > 1 << 20));
        assert_eq!(r.arena_bytes_used.value, Some(r.plan.arena_bytes as u32));
        assert!(r.latency.us.p50_us > 0.0 && r.latency.us.p90_us >= r.latency.us.p50_us);
        eprintln!(
            "{}: {:.2}% on 10,000 images, p50 {:.0} us, peak RSS {} B",
            plan.display(),
            r.accuracy * 100.0,
            r.latency.us.p50_us,
            r.peak_rss_bytes.value.unwrap_or(0)
        );
    }
}

#[test]
fn tract_engine_matches_tract_reference_and_reports_the_cpu_fallback() {
    let f32_artifact = resnet_tract("f32");
    let agent = AgentProc::start("tract", &fresh_store("tract"), &[]);
    let client = agent.client();
    let dev = client.device().clone();
    assert!(
        dev.engines.iter().any(|e| e == "tract-cpu"),
        "{:?}",
        dev.engines
    );
    assert!(dev.accelerator.starts_with("none"), "{}", dev.accelerator);
    // One host at a time: let the CLI in.
    drop(client);
    // Through the CLI, as a user would.
    let port = agent.port_arg();
    let out = edgefit(&["flash", "--port", &port, f32_artifact.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = scratch().join("tract-f32.json");
    let out = edgefit(&[
        "bench",
        "--port",
        &port,
        f32_artifact.to_str().unwrap(),
        "--out",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("engine tract-cpu") && text.contains("engine note  none:"),
        "{text}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["engine"], "tract-cpu");
    assert_eq!(r["samples"], 10_000);
    assert_eq!(r["outputs_identical"], 10_000);
    assert_eq!(
        r["accuracy"].as_f64().unwrap(),
        evaluate_accuracy(&model("resnet-fmnist.onnx")),
        "tract engine accuracy differs from tract's reference"
    );
    // Asking for the GPU where there is none is refused, not faked.
    let mut client = agent.client();
    let data = test_data(20);
    let image = std::fs::read(&f32_artifact).unwrap();
    let e = bench_idx(
        &mut client,
        &image,
        &data,
        BenchOptions {
            compare_outputs: true,
            engine: Some(EngineKind::TractCuda),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("engine not available"), "{e}");
    // f16: tract translates the model; predictions mostly agree with f32.
    let f16_artifact = resnet_tract("f16");
    flash(&mut client, &f16_artifact);
    let r = run_bench(
        &mut client,
        &f16_artifact,
        &data,
        Some(EngineKind::TractCpu),
    );
    assert_sequence(&r, 20);
    assert_eq!(r.plan.precision, "f16");
    assert!(r.agreement_with_host >= 0.9, "{}", r.agreement_with_host);
}

#[test]
fn a_kill_mid_transfer_keeps_the_previous_artifact() {
    let store = fresh_store("kill");
    let resnet = resnet_int8();
    let mut agent = AgentProc::start("kill", &store, &[]);
    let mut client = agent.client();
    flash(&mut client, &resnet);
    let before = client.refresh().unwrap().active_plan.unwrap();
    // Kill the agent when half of the VGG plan is sent.
    let vgg = std::fs::read(vgg_int8()).unwrap();
    let mut killed = false;
    let e = flash_plan(&mut client, &vgg, &mut |sent, total| {
        if !killed && sent > total / 2 {
            agent.child.kill().expect("kill the agent");
            let _ = agent.child.wait();
            killed = true;
        }
    })
    .unwrap_err();
    assert!(killed, "{e}");
    drop(client);
    drop(agent);
    assert!(
        store.join("upload.tmp").exists(),
        "the partial upload was on disk"
    );
    let agent = AgentProc::start("kill-restart", &store, &[]);
    let mut client = agent.client();
    let after = client.device().active_plan.unwrap();
    assert_eq!((after.plan_id, after.crc32), (before.plan_id, before.crc32));
    assert!(!store.join("upload.tmp").exists());
    let r = run_bench(&mut client, &resnet, &test_data(200), None);
    assert_sequence(&r, 200);
    assert_eq!(r.outputs_identical, Some(200));
    // A tract artifact whose model tract cannot load is refused at commit,
    // and the plan stays active.
    let junk = edgefit_agent::encode_tract_artifact(
        b"not an onnx model",
        edgefit_agent::TractPrecision::F32,
        &[1, 1, 28, 28],
    )
    .unwrap();
    let e = flash_plan(&mut client, &junk, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("rejected by the engine"), "{e}");
    let still = client.refresh().unwrap().active_plan.unwrap();
    assert_eq!(still.crc32, before.crc32);
}

/// Sends `frames` on a fresh connection and returns the first answer, and
/// whether the agent then closed the connection.
fn probe(port: u16, bytes: &[u8]) -> (Option<(ErrorCode, u32)>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut reader: FrameReader<MAX_FRAME> = FrameReader::new();
    let mut buf = [0u8; 4096];
    let mut answer = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (answer, true),
            Ok(n) => {
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    let (used, frame) = reader.feed(rest);
                    rest = &rest[used..];
                    if let Some(Ok(f)) = frame {
                        if let Ok((_, DeviceMsg::Error { code, detail, .. })) =
                            decode_frame::<DeviceMsg>(f)
                        {
                            answer.get_or_insert((code, detail));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (answer, true),
            Err(_) => return (answer, false),
        }
    }
}

#[test]
fn refusals_leave_a_running_bench_unharmed() {
    let token_file = scratch().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let agent = AgentProc::start(
        "refuse",
        &fresh_store("refuse"),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let resnet = resnet_int8();
    let image = std::fs::read(&resnet).unwrap();
    let mut a = agent
        .client_with(Some(b"s3cret-token"))
        .expect("the right token");
    flash_plan(&mut a, &image, &mut |_, _| {}).unwrap();
    // Start a benchmark by hand and run half of it.
    let data = test_data(100);
    let mut runner = edgefit::runner::PlanRunner::new(&image).unwrap();
    let input = runner.input_desc();
    let mut sample = vec![0u8; edgefit::runner::tensor_bytes(&input)];
    a.expect_ack(&HostMsg::BenchStart {
        plan_id: None,
        samples: 100,
        want_outputs: true,
        engine: None,
    })
    .unwrap();
    let mut run = |client: &mut Client, i: usize| {
        let pixels = data.image_f32(i);
        edgefit::runner::encode_input(&input, &pixels, &mut sample).unwrap();
        let mut got = None;
        for part in sample_parts(i as u32, &sample) {
            if let edgefit::device::client::Reply::Record(r) = client.request(&part).unwrap() {
                got = Some(r);
            }
        }
        let rec = got.expect("a record");
        runner.run(&pixels).unwrap();
        assert_eq!(rec.sample as usize, i);
        assert_eq!(rec.outputs.as_deref(), Some(runner.raw_output().unwrap()));
    };
    for i in 0..50 {
        run(&mut a, i);
    }
    let hello = encode_frame_vec(1, &HostMsg::hello()).unwrap();
    // No token.
    let (ans, closed) = probe(agent.port, &hello);
    assert_eq!(ans, Some((ErrorCode::Unauthorized, 2)));
    assert!(closed);
    // A wrong token.
    let wrong = encode_frame_vec(1, &HostMsg::Auth { token: b"guess" }).unwrap();
    let (ans, closed) = probe(agent.port, &wrong);
    assert_eq!(ans, Some((ErrorCode::Unauthorized, 1)));
    assert!(closed);
    // Garbage before the token.
    let mut garbage = hello.clone();
    garbage[3] ^= 0x10;
    let (ans, closed) = probe(agent.port, &garbage);
    assert!(
        matches!(
            ans.map(|a| a.0),
            Some(ErrorCode::BadCrc | ErrorCode::BadFrame)
        ),
        "{ans:?}"
    );
    assert!(closed);
    // An oversized frame (no delimiter within MAX_FRAME bytes).
    let (ans, closed) = probe(agent.port, &vec![0x42u8; 3 * MAX_FRAME]);
    assert_eq!(ans.map(|a| a.0), Some(ErrorCode::BadFrame));
    assert!(closed);
    // A second host with the right token: the agent is busy.
    let e = agent
        .client_with(Some(b"s3cret-token"))
        .err()
        .expect("busy");
    assert!(e.to_string().contains("device busy"), "{e}");
    // The first host's benchmark goes on.
    for i in 50..100 {
        run(&mut a, i);
    }
    match a.request(&HostMsg::BenchEnd).unwrap() {
        edgefit::device::client::Reply::Summary(s) => assert_eq!(s.samples, 100),
        other => panic!("{other:?}"),
    }
    let log = agent.log_text();
    for needle in ["no token", "wrong token", "oversized frame", "busy"] {
        assert!(log.contains(needle), "agent log lacks {needle}: {log}");
    }
}

#[test]
fn listening_beyond_loopback_needs_a_token_and_idle_hosts_are_dropped() {
    let out = Command::new(agent_bin())
        .args(["serve", "--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--store")
        .arg(fresh_store("open"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("without a token"), "{}", stderr(&out));
    let agent = AgentProc::start("idle", &fresh_store("idle"), &["--idle-timeout", "1"]);
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(
        s.read(&mut b).unwrap_or(0),
        0,
        "the agent closes an idle connection"
    );
    assert!(t.elapsed() < Duration::from_secs(9));
    // And then serves the next host.
    drop(agent.client());
}

#[test]
fn a_board_power_sensor_reaches_the_records() {
    let root = repo_root().join("agent/power/tests/fixtures/jetson-orin-nano");
    let agent = AgentProc::start(
        "power",
        &fresh_store("power"),
        &["--sysfs-root", root.to_str().unwrap()],
    );
    let mut client = agent.client();
    assert_eq!(
        client.device().power_sensor,
        edgefit_proto::PowerSensorKind::Ina3221
    );
    let resnet = resnet_int8();
    flash(&mut client, &resnet);
    let r = run_bench(&mut client, &resnet, &test_data(30), None);
    assert!(r.records.iter().all(|x| x.energy_uj.is_some()));
    assert!(r.energy_uj_per_inference.value.is_some_and(|e| e > 0.0));
    assert!(r.energy_uj_per_inference.source.contains("Ina3221"));
    assert!(r.avg_power_mw.value.is_some());
}

/// The agent cross-built for aarch64 (native engine), once per test run.
fn aarch64_agent() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/agent-aarch64.sh"))
            .arg("build")
            .output()
            .expect("run scripts/agent-aarch64.sh");
        assert!(
            out.status.success(),
            "aarch64 build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
    })
}

#[test]
fn aarch64_agent_under_qemu_gives_the_x86_outputs() {
    let bin = aarch64_agent();
    let agent = AgentProc::start_with(
        Path::new("qemu-aarch64"),
        &["-L", "/usr/aarch64-linux-gnu", bin.to_str().unwrap()],
        "aarch64",
        &fresh_store("aarch64"),
        &[],
    );
    let mut client = agent.client();
    assert!(
        client.device().core.starts_with("aarch64"),
        "{}",
        client.device().core
    );
    let resnet = resnet_int8();
    flash(&mut client, &resnet);
    let r = run_bench(&mut client, &resnet, &test_data(200), None);
    assert_sequence(&r, 200);
    // The host's reference is the portable kernels on x86-64; the agent ran
    // the NEON ones.
    assert_eq!(
        r.outputs_identical,
        Some(200),
        "aarch64 outputs differ from x86-64"
    );
    assert_eq!(r.agreement_with_host, 1.0);

    // An int8 softmax (a PyTorch export that ends in one): integers only,
    // the same bytes under aarch64 as the host's portable reference.
    let plan = scratch().join("softmax-int8.efp");
    let model = edgefit_e2e::repo_root()
        .join("tests/conformance/exporters/torchscript13_resnet_view/model.onnx");
    let out = edgefit(&[
        "compile",
        model.to_str().unwrap(),
        "--calib",
        "synthetic",
        "--calib-samples",
        "8",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    flash(&mut client, &plan);
    let image = std::fs::read(&plan).unwrap();
    let pixels: Vec<u8> = (0..50 * 12 * 12 * 3)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let source = edgefit::data::DataSource::from_images(
        Path::new("generated"),
        "generated 12x12 RGB".into(),
        (12, 12, 3),
        pixels,
        vec![0; 50],
    );
    let recipe = edgefit::data::Recipe::plain(edgefit::data::ChannelOrder::Rgb);
    let eval = edgefit::evaluate::EvalData {
        source: &source,
        recipe: &recipe,
        input_shape: &[1, 3, 12, 12],
        on_bad: edgefit::data::OnBadImage::Fail,
    };
    let options = BenchOptions {
        compare_outputs: true,
        engine: None,
    };
    let r = bench(&mut client, &image, &eval, options, &mut |_, _| {}).unwrap();
    assert_eq!(
        r.outputs_identical,
        Some(50),
        "int8 softmax differs on aarch64"
    );
}

#[test]
fn compare_measures_this_machine_through_the_agent() {
    let token_file = scratch().join("compare-token");
    std::fs::write(&token_file, "compare-token").unwrap();
    let agent = AgentProc::start(
        "compare",
        &fresh_store("compare"),
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "--board",
            "ci-agent",
        ],
    );
    let out = scratch().join("compare");
    let _ = std::fs::remove_dir_all(&out);
    let o = edgefit(&[
        "compare",
        model("resnet-fmnist.onnx").to_str().unwrap(),
        "--precisions",
        "int8",
        "--sparsity",
        "0",
        "--prune-channels",
        "0",
        "--limit",
        "100",
        "--calib-samples",
        "50",
        "--device-limit",
        "20",
        "--profiles",
        "this-machine,nrf52840-dk",
        "--device-profile",
        "this-machine",
        "--port",
        &agent.port_arg(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("On this-machine, the best ResNet is"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["profile"] == "this-machine")
        .expect("this-machine row");
    let source = row["latency_source"].as_str().unwrap();
    assert!(source.starts_with("measured on ci-agent"), "{source}");
    assert!(row["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0));
}

/// A connection to the agent from another loopback address (`127.0.0.x`),
/// so the agent sees another peer.
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    bind(&fd, &SocketAddrV4::new(Ipv4Addr::from(source), 0)).expect("bind a loopback address");
    connect(&fd, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).expect("connect");
    TcpStream::from(fd)
}

/// Whether the agent has closed `s` (end of file or reset), looking for
/// `wait` at most.
fn closed_by_agent(s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("read timeout");
    let mut b = [0u8; 256];
    let mut r = s;
    match r.read(&mut b) {
        Ok(0) => true,
        // An answer (an error frame before the close): look again.
        Ok(_) => closed_by_agent(s, wait),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Sends one byte of a frame that never ends (no delimiter); false once the
/// agent has closed the connection.
fn trickle(s: &mut TcpStream) -> bool {
    s.write_all(&[0x11]).is_ok() && !closed_by_agent(s, Duration::from_millis(20))
}

#[test]
fn slow_clients_cannot_lock_hosts_out() {
    let resnet = resnet_int8();
    // One address may hold 4 connections: 16 slow clients from 127.0.0.2
    // leave room for a host elsewhere, even with a long handshake timeout.
    let agent = AgentProc::start(
        "slow-cap",
        &fresh_store("slow-cap"),
        &["--handshake-timeout", "600"],
    );
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| connect_from([127, 0, 0, 2], agent.port))
        .collect();
    for s in &mut slow {
        let _ = s.write_all(&[0x11]);
    }
    let slow = slow;
    // The agent closes the connections over the cap at once; the rest stay.
    let mut open = slow.len();
    for _ in 0..200 {
        open = slow
            .iter()
            .filter(|s| !closed_by_agent(s, Duration::from_millis(20)))
            .count();
        if open == 4 {
            break;
        }
    }
    assert_eq!(open, 4, "{}", agent.log_text());
    let mut client = agent.client();
    flash(&mut client, &resnet);
    assert!(client.refresh().unwrap().active_plan.is_some());
    drop(client);
    drop(slow);
    let log = agent.log_text();
    assert_eq!(
        log.matches("refused: 4 connections open from 127.0.0.2")
            .count(),
        12,
        "{log}"
    );
    drop(agent);

    // 16 slow clients from four addresses fill every slot, sending a byte
    // every 200 ms (each byte restarted the idle timer): the handshake
    // timeout closes each of them, and a host gets in.
    let agent = AgentProc::start(
        "slow-handshake",
        &fresh_store("slow-handshake"),
        &["--handshake-timeout", "1"],
    );
    let slow: Vec<TcpStream> = (0..16)
        .map(|i| connect_from([127, 0, 0, 2 + i / 4], agent.port))
        .collect();
    let trickling: Vec<_> = slow
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                // Bounded: 150 bytes, about 33 s at most.
                for _ in 0..150 {
                    if !trickle(&mut s) {
                        return true;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                false
            })
        })
        .collect();
    let closed = trickling
        .into_iter()
        .map(|t| t.join().expect("trickle thread"))
        .filter(|&c| c)
        .count();
    assert_eq!(
        closed,
        16,
        "slow clients kept their connections: {}",
        agent.log_text()
    );
    let mut client = agent.client();
    flash(&mut client, &resnet);
    let log = agent.log_text();
    assert_eq!(log.matches("handshake timeout").count(), 16, "{log}");
}

/// A Dense plan `[1, 8] -> [1, 5]` declaring an arena of `arena` bytes.
fn plan_with_arena(arena: u32) -> Vec<u8> {
    use edgefit_engine::{DType, OpDesc, OpKind, PlanBuilder, Precision, Quant};
    let mut b = PlanBuilder::new(Precision::F32);
    let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
    let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = b.add_weights_f32(&[5, 8], &[0.25; 40]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(arena)
        .set_plan_id(0xb16);
    b.finish_checked().expect("plan")
}

/// Uploads `image` frame by frame, without the host's own checks (a
/// modified host could send anything), and returns the commit's answer.
fn upload_unchecked(client: &mut Client, image: &[u8]) -> Result<(), ClientError> {
    let begin = HostMsg::plan_begin(0xb16, image).expect("plan begin");
    client.expect_ack(&begin)?;
    for chunk in edgefit_proto::plan_chunks(image) {
        client.expect_ack(&chunk)?;
    }
    client.request(&HostMsg::PlanCommit).map(|_| ())
}

#[test]
fn a_plan_whose_arena_the_board_cannot_hold_is_refused_and_the_agent_lives() {
    let resnet = resnet_int8();
    // 3.75 GiB of arena, on a board with 2 GiB of address space.
    let big = plan_with_arena(0xF000_0000);
    let small_board = |name: &str, extra: &[&str]| {
        let limit = r#"ulimit -v 2097152 && exec "$0" "$@""#;
        let bin = agent_bin();
        AgentProc::start_with(
            Path::new("bash"),
            &["-c", limit, bin.to_str().unwrap()],
            name,
            &fresh_store(name),
            extra,
        )
    };
    // Over the agent's arena limit (1 GiB): refused before any allocation.
    let agent = small_board("arena-limit", &[]);
    let mut client = agent.client();
    flash(&mut client, &resnet);
    let before = client.refresh().unwrap().active_plan.unwrap();
    let e = upload_unchecked(&mut client, &big).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Device {
                code: ErrorCode::ArenaTooSmall,
                detail: 0x4000_0000,
                ..
            }
        ),
        "{e}"
    );
    let after = client.refresh().unwrap().active_plan.unwrap();
    assert_eq!(after.crc32, before.crc32, "the previous plan stays active");
    let r = run_bench(&mut client, &resnet, &test_data(20), None);
    assert_sequence(&r, 20);
    drop(client);
    assert!(
        agent.log_text().contains("nothing was allocated"),
        "{}",
        agent.log_text()
    );
    drop(agent);
    // Under a limit the board cannot meet (4095 MiB): the allocation fails
    // and is reported, where it aborted the agent.
    let agent = small_board("arena-oom", &["--max-arena-mib", "4095"]);
    let mut client = agent.client();
    flash(&mut client, &resnet);
    let before = client.refresh().unwrap().active_plan.unwrap();
    let e = flash_plan(&mut client, &big, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("arena too small"), "{e}");
    let after = client.refresh().unwrap().active_plan.unwrap();
    assert_eq!(after.crc32, before.crc32, "the previous plan stays active");
    let r = run_bench(&mut client, &resnet, &test_data(20), None);
    assert_sequence(&r, 20);
    drop(client);
    let log = agent.log_text();
    assert!(log.contains("the system refused the memory"), "{log}");
    assert!(!log.contains("memory allocation"), "{log}");
}

/// `edgefit-agent ARGS...`, which must fail at start-up with one line.
fn agent_fails_with(args: &[&str], needles: &[&str]) {
    let out = Command::new(agent_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run edgefit-agent");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

#[test]
fn start_up_errors_are_one_line() {
    let file = scratch().join("store-is-a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let store = fresh_store("one-line");
    let store = store.to_str().unwrap();
    agent_fails_with(
        &["serve", "--store", file.to_str().unwrap()],
        &["edgefit-agent: error: store ", "is a file, not a folder"],
    );
    let missing = scratch().join("no-such-token");
    agent_fails_with(
        &[
            "serve",
            "--store",
            store,
            "--token-file",
            missing.to_str().unwrap(),
        ],
        &["edgefit-agent: error: token file ", ": No such file"],
    );
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    agent_fails_with(
        &["serve", "--store", store, "--listen", &taken_addr],
        &["edgefit-agent: error: listen on ", "in use"],
    );
    for bad in ["1e30", "inf", "1e18", "0", "-5", "NaN"] {
        for flag in ["--idle-timeout", "--handshake-timeout"] {
            let out = Command::new(agent_bin())
                .args(["serve", "--store", store, &format!("{flag}={bad}")])
                .output()
                .expect("run edgefit-agent");
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{flag} {bad}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(err.contains("from 0.001 to 86400"), "{flag} {bad}: {err}");
        }
    }
    for bad in ["0", "17"] {
        let out = Command::new(agent_bin())
            .args(["serve", "--store", store, "--max-per-address", bad])
            .output()
            .expect("run edgefit-agent");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    }
}

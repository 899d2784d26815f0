use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use edgefit::data::{OnBadImage, Role};
use edgefit::device::bench::{artifact_input, bench, render_csv, render_text, BenchOptions};
use edgefit::device::flash::{cached_plan_path, flash_plan};
use edgefit::device::{Client, ClientConfig};
use edgefit::evaluate::EvalData;
use edgefit_proto::EngineKind;

use super::data_args::{BadImageArg, DataArgs};
use super::device::PortArgs;
use super::progress;

#[derive(Clone, Copy, ValueEnum)]
pub enum EngineArg {
    /// The device's best for the artifact (tract-cuda when a GPU is found)
    Auto,
    Native,
    TractCpu,
    TractCuda,
}

impl EngineArg {
    fn kind(self) -> Option<EngineKind> {
        match self {
            EngineArg::Auto => None,
            EngineArg::Native => Some(EngineKind::Native),
            EngineArg::TractCpu => Some(EngineKind::TractCpu),
            EngineArg::TractCuda => Some(EngineKind::TractCuda),
        }
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit bench --port tcp:127.0.0.1:4545 --limit 500 -o results.json   # the device's active plan\n  edgefit bench --local resnet-int8.efp --data val/ --json               # this host, the agent's engines"
)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["port", "local"]))]
pub struct BenchCmd {
    #[command(flatten)]
    port: Option<PortArgs>,
    /// Benchmark VARIANT (a plan, or a tract artifact from `compile --target tract`)
    /// on the Linux agent's engines run in this process, on this machine
    #[arg(long, value_name = "VARIANT", conflicts_with = "plan")]
    local: Option<PathBuf>,
    /// The artifact the device runs (default: the copy `edgefit flash` kept of the device's active one)
    plan: Option<PathBuf>,
    /// The engine to run on (the Linux agent: native for plans, tract-cpu or tract-cuda for tract artifacts)
    #[arg(long, value_enum, default_value = "auto")]
    engine: EngineArg,
    /// The samples, preprocessed with the plan's recorded recipe (recipe flags override)
    #[command(flatten)]
    data: DataArgs,
    /// Write the results: .json (schema edgefit.bench.v1) or .csv (one row per sample)
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
    /// Do not ask for raw outputs (skips the byte-for-byte check against the host engine)
    #[arg(long)]
    no_outputs: bool,
}

/// The `edgefit-agent` binary `bench --local` runs: $EDGEFIT_AGENT, else the
/// one beside this `edgefit` (cargo builds both into one folder), else PATH's.
fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGEFIT_AGENT") {
        return PathBuf::from(p);
    }
    let name = format!("edgefit-agent{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(&name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A local agent process and its store: killed and removed on drop (the
/// command's end, or any error).
struct LocalAgent {
    child: std::process::Child,
    _store: tempfile::TempDir,
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edgefit-agent` on a free loopback port with a fresh store (its
/// engines, not linked into this binary), flashes `variant` to it, and
/// returns the session.
fn local_agent(variant: &Path) -> anyhow::Result<(Client, Vec<u8>, LocalAgent)> {
    use std::io::BufRead;
    let image = std::fs::read(variant).with_context(|| format!("read {}", variant.display()))?;
    let store = tempfile::Builder::new()
        .prefix("edgefit-local-agent-")
        .tempdir()
        .context("create the local agent's store")?;
    let binary = agent_binary();
    let mut child = std::process::Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(store.path().join("store"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "start the local agent {} (build it: cargo build --bin edgefit-agent, or set \
                 $EDGEFIT_AGENT)",
                binary.display()
            )
        })?;
    // Its first line says where it listens; read it with a deadline.
    let stdout = child.stdout.take().context("the local agent's output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let agent = LocalAgent {
        child,
        _store: store,
    };
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .context("the local agent did not start within 30 s")?;
    let addr: std::net::SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .with_context(|| {
            format!(
                "the local agent said `{}`, not where it listens",
                line.trim()
            )
        })?;
    let link = edgefit::device::open(
        &edgefit::device::Port::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        std::time::Duration::from_secs(5),
    )?;
    let config = ClientConfig {
        run_timeout: std::time::Duration::from_secs(600),
        ..ClientConfig::default()
    };
    let mut client = Client::connect(link, config).context("connect to the local agent")?;
    flash_plan(&mut client, &image, &mut |_, _| {})
        .with_context(|| format!("load {} into the local agent", variant.display()))?;
    Ok((client, image, agent))
}

impl BenchCmd {
    pub fn run(self) -> anyhow::Result<()> {
        if matches!(self.data.on_bad_image, BadImageArg::Skip) {
            bail!("bench sends every sample to the device: --on-bad-image skip is for evaluate");
        }
        let mut _store = None;
        let (mut client, image, what) = match (&self.local, &self.port) {
            (Some(variant), _) => {
                let (client, image, store) = local_agent(variant)?;
                _store = Some(store);
                (client, image, variant.clone())
            }
            (None, Some(port)) => {
                let mut client = port.connect()?;
                let path = self.plan_path(&mut client)?;
                let image =
                    std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                (client, image, path)
            }
            (None, None) => bail!("pass --port PORT or --local VARIANT"),
        };
        let (shape, recorded) =
            artifact_input(&image).with_context(|| format!("bench {}", what.display()))?;
        let (source, recipe) = self
            .data
            .open(Role::Test, &shape, recorded)
            .with_context(|| format!("bench {}", what.display()))?;
        let data = EvalData {
            source: &source,
            recipe: &recipe,
            input_shape: &shape,
            on_bad: OnBadImage::Fail,
        };
        let bar = progress::bar("bench");
        let report = bench(
            &mut client,
            &image,
            &data,
            BenchOptions {
                compare_outputs: !self.no_outputs,
                engine: self.engine.kind(),
            },
            &mut progress::callback(&bar),
        )
        .with_context(|| format!("bench {} on {}", what.display(), client.device().board))?;
        bar.finish_and_clear();
        if let Some(out) = &self.out {
            let text = match out.extension().and_then(|e| e.to_str()) {
                Some("csv") => render_csv(&report),
                Some("json") => serde_json::to_string_pretty(&report)?,
                _ => bail!("--out {}: use a .json or .csv file name", out.display()),
            };
            std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render_text(&report));
        }
        Ok(())
    }

    fn plan_path(&self, client: &mut Client) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.plan {
            return Ok(p.clone());
        }
        let Some(active) = client.device().active_plan else {
            bail!(
                "{} has no active plan: flash one first (edgefit flash --port ... PLAN.efp)",
                client.device().board
            );
        };
        let cached = cached_plan_path(active.crc32);
        if !cached.exists() {
            bail!(
                "the device runs plan {:08x} (CRC {:08x}), which this host did not flash: \
                 pass its file",
                active.plan_id,
                active.crc32
            );
        }
        Ok(cached)
    }
}

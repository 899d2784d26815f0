//! `edgefit-agent serve`: the edgefit device on a Linux board.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgefit_agent::{read_token, Agent, AgentConfig, DEFAULT_PORT};

#[derive(Parser)]
#[command(
    name = "edgefit-agent",
    version,
    about = "edgefit device agent for Linux edge boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve hosts over TCP: store artifacts, run benchmarks
    Serve(Serve),
}

#[derive(clap::Args)]
struct Serve {
    /// Address to listen on (a non-loopback address needs --token-file)
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Directory for the active and previous artifacts
    #[arg(long, value_name = "DIR", default_value = "edgefit-agent-store")]
    store: PathBuf,
    /// File holding the access token every connection must present first
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Close a connection that sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    idle_timeout: f64,
    /// Largest artifact accepted, in MiB (at most 4095: sizes are 32-bit on the wire)
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    max_artifact_mib: u32,
    /// Board name in the hello (default: the device-tree or DMI model)
    #[arg(long)]
    board: Option<String>,
    /// Root of /sys and /proc for board and power-sensor files
    #[arg(long, value_name = "DIR", default_value = "/")]
    sysfs_root: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let Command::Serve(s) = Cli::parse().command;
    let mut config = AgentConfig::new(s.listen, s.store);
    config.token = s
        .token_file
        .as_deref()
        .map(|f| read_token(f).with_context(|| format!("token file {}", f.display())))
        .transpose()?;
    config.idle_timeout = Duration::from_secs_f64(s.idle_timeout.max(0.1));
    config.max_artifact_bytes = s
        .max_artifact_mib
        .saturating_mul(1 << 20)
        .min(u32::MAX >> 1 << 1);
    config.board = s.board;
    config.sysfs_root = s.sysfs_root;
    let agent = Agent::bind(config)?;
    agent.serve().context("accept connections")
}

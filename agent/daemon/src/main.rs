//! `edgefit-agent serve`: the edgefit device on a Linux board.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use edgefit_agent::{
    parse_seconds, read_token, Agent, AgentConfig, DEFAULT_PORT, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
};

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
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    idle_timeout: Duration,
    /// Close a connection whose first whole frame (the token, or the hello)
    /// has not arrived this many seconds after it connected
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    handshake_timeout: Duration,
    /// Connections open at once from one IP address (of 16 in all)
    #[arg(long, value_name = "N", default_value_t = MAX_CONNECTIONS_PER_ADDRESS,
          value_parser = clap::value_parser!(u16).range(1..=MAX_CONNECTIONS as i64).map(usize::from))]
    max_per_address: usize,
    /// Largest artifact accepted, in MiB (at most 4095: sizes are 32-bit on the wire)
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    max_artifact_mib: u32,
    /// Largest plan arena accepted, in MiB (at most 4095); a plan needing
    /// more is refused before any of it is allocated
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=4095))]
    max_arena_mib: u32,
    /// Board name in the hello (default: the device-tree or DMI model)
    #[arg(long)]
    board: Option<String>,
    /// Root of /sys and /proc for board and power-sensor files
    #[arg(long, value_name = "DIR", default_value = "/")]
    sysfs_root: PathBuf,
}

fn main() -> ExitCode {
    let Command::Serve(s) = Cli::parse().command;
    match serve(s) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgefit-agent: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, joined with ": " (a cause whose
/// text the line already holds is not repeated).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn serve(s: Serve) -> anyhow::Result<()> {
    let mut config = AgentConfig::new(s.listen, s.store);
    config.token = s
        .token_file
        .as_deref()
        .map(|f| read_token(f).with_context(|| format!("token file {}", f.display())))
        .transpose()?;
    config.idle_timeout = s.idle_timeout;
    config.handshake_timeout = s.handshake_timeout;
    config.max_per_address = s.max_per_address;
    config.max_artifact_bytes = s
        .max_artifact_mib
        .saturating_mul(1 << 20)
        .min(u32::MAX >> 1 << 1);
    config.max_arena_bytes = s.max_arena_mib.saturating_mul(1 << 20);
    config.board = s.board;
    config.sysfs_root = s.sysfs_root;
    let agent = Agent::bind(config)?;
    // One line saying where it listens (with --listen ...:0, the port the OS
    // chose): `edgefit bench --local` reads it.
    println!("edgefit-agent: listening on {}", agent.local_addr()?);
    std::io::Write::flush(&mut std::io::stdout())?;
    agent.serve().context("accept connections")
}

//! Options shared by the subcommands that talk to a device.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgefit::device::{self, Client, ClientConfig, Port};

/// The `--port` group of every command that reaches a device. `--port` is
/// required where a device is the point (flash, bench); compare, where it is
/// optional, lifts that (`mut_arg`) and asks [`PortArgs::given`].
#[derive(Args)]
pub struct PortArgs {
    /// The device: serial:/dev/ttyACM0[@115200] (a board's UART) or tcp:HOST:PORT (QEMU's UART, the Linux agent)
    #[arg(long, value_name = "PORT", required = true)]
    port: Option<Port>,
    /// Seconds to wait for an answer before sending a request again (inferences and commits get 20x; at most 86400)
    #[arg(long, default_value = "3", value_name = "SECS", value_parser = edgefit_artifact::parse_seconds, requires = "port")]
    timeout: Duration,
    /// File holding the device's access token (the agent's --token-file); also $EDGEFIT_TOKEN_FILE
    #[arg(long, value_name = "FILE", env = "EDGEFIT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl PortArgs {
    /// Whether a device was named.
    pub fn given(&self) -> bool {
        self.port.is_some()
    }

    /// Opens the link and the session (token, hello, version check, reset).
    pub fn connect(&self) -> anyhow::Result<Client> {
        let port = self
            .port
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no --port given"))?;
        connect(port, self.timeout, self.token_file.as_deref())
    }
}

/// Opens `port` and the session, waiting `timeout` per request,
/// presenting the token in `token_file` first when given.
pub fn connect(
    port: &Port,
    timeout: Duration,
    token_file: Option<&Path>,
) -> anyhow::Result<Client> {
    let token = token_file
        .map(|f| {
            edgefit_artifact::read_token(f).with_context(|| format!("token file {}", f.display()))
        })
        .transpose()?;
    let timeout = timeout.max(Duration::from_millis(50));
    let link = device::open(port, timeout.max(Duration::from_secs(5)))
        .with_context(|| format!("open {port}"))?;
    let config = ClientConfig {
        timeout,
        run_timeout: timeout * 20,
        token,
        ..ClientConfig::default()
    };
    Client::connect(link, config).with_context(|| format!("connect to the device on {port}"))
}

//! Options shared by the subcommands that talk to a device.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgefit::device::{self, Client, ClientConfig, Port};

#[derive(Args)]
pub struct PortArgs {
    /// The device: serial:/dev/ttyACM0[@115200] (a board's UART) or tcp:HOST:PORT (QEMU's UART, the Linux agent)
    #[arg(long, value_name = "PORT")]
    port: Port,
    /// Seconds to wait for an answer before sending a request again (inferences and commits get 20x)
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    timeout: f64,
}

impl PortArgs {
    /// Opens the link and the session (hello, version check, reset).
    pub fn connect(&self) -> anyhow::Result<Client> {
        connect(&self.port, self.timeout)
    }
}

/// Opens `port` and the session, with `timeout` seconds per request.
pub fn connect(port: &Port, timeout: f64) -> anyhow::Result<Client> {
    let timeout = Duration::from_secs_f64(timeout.max(0.05));
    let link = device::open(port, timeout.max(Duration::from_secs(5)))
        .with_context(|| format!("open {port}"))?;
    let config = ClientConfig {
        timeout,
        run_timeout: timeout * 20,
        ..ClientConfig::default()
    };
    Client::connect(link, config).with_context(|| format!("connect to the device on {port}"))
}

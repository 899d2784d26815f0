//! One module per subcommand; each has an args struct with `run`.

mod inspect;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Per-layer parameters, MACs, weight and activation bytes, and planned activation RAM
    Inspect(inspect::InspectCmd),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Inspect(c) => c.run(),
        }
    }
}

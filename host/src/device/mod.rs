//! Talking to devices: links (serial, TCP), the protocol client, flashing
//! plans and field benchmarks. The same code serves the Cortex-M firmware
//! (UART, or QEMU's UART on a TCP socket) and the Linux agent (TCP).

pub mod bench;
pub mod client;
pub mod flash;
pub mod link;
#[cfg(feature = "probe")]
pub mod probe;

pub use client::{Client, ClientConfig, ClientError, DeviceIdentity};
pub use link::{open, Link, Port};

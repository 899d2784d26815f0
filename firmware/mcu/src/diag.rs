//! Diagnostics logging with `defmt` (feature `defmt`): boot, plans stored,
//! refused requests, unreadable frames and benchmark summaries go to the
//! board's defmt logger (RTT on a real board, read by `probe-rs attach`).
//! The data protocol never goes through it. Without the feature every
//! `diag!` compiles to nothing, so the QEMU firmware and the host tests
//! carry no logging code.

use edgefit_proto::DeviceMsg;

/// `diag!(info | warn | …, "fmt", args…)`: a defmt log line when the
/// `defmt` feature is on, nothing otherwise (the arguments are not evaluated).
macro_rules! diag {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::$level!($($arg)*);
    }};
}
pub(crate) use diag;

/// Logs the answers worth a line (not `Ack`, `Pong` or per-sample records,
/// which would flood the log during a benchmark).
#[cfg_attr(not(feature = "defmt"), allow(unused_variables))]
pub(crate) fn answer(request_kind: u8, msg: &DeviceMsg<'_>) {
    match msg {
        DeviceMsg::PlanStored(p) => diag!(info, "plan stored and active: {}", p),
        DeviceMsg::BenchSummary(s) => diag!(info, "benchmark done: {}", s),
        DeviceMsg::Error { seq, code, detail } => diag!(
            warn,
            "request kind {=u8} seq {=u32} refused: {} (detail {=u32})",
            request_kind,
            seq,
            code,
            detail
        ),
        _ => {}
    }
}

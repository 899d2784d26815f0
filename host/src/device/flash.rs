//! `edgefit flash`: checks an artifact (a plan, or a tract model artifact for
//! the Linux agent) against what the device announced, sends it in chunks to
//! the device's inactive slot and commits it.

use std::path::PathBuf;

use edgefit_artifact::ArtifactKind;
use edgefit_engine::Plan;
use edgefit_proto::{plan_chunks, HostMsg, PlanInfo};

use super::client::{Client, ClientError, Reply};

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("not a valid plan: {0}")]
    BadPlan(String),
    #[error(
        "{board} has no engine for tract model artifacts (its engines: {engines}); \
         flash a plan, or run the agent built with tract"
    )]
    NoTractEngine { board: String, engines: String },
    #[error(
        "the plan is {plan} bytes but the device's plan slot holds {slot} bytes ({board}); \
         nothing was sent"
    )]
    TooLarge {
        plan: usize,
        slot: u32,
        board: String,
    },
    #[error(
        "the plan needs {needed} bytes of arena but the device has {available} ({board}); \
         nothing was sent"
    )]
    ArenaTooSmall {
        needed: usize,
        available: u32,
        board: String,
    },
    #[error(
        "the plan has format version {plan}, the device's engine reads versions up to {device}: \
         update the firmware, or recompile the plan without tiling (version 2 adds tiled segments)"
    )]
    EngineVersion { plan: u16, device: u16 },
    #[error("{source}; {sent} of {total} bytes had been sent, the device keeps its previous plan")]
    Transfer {
        sent: usize,
        total: usize,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What was stored.
#[derive(Debug, Clone)]
pub struct Flashed {
    pub stored: PlanInfo,
    pub bytes: usize,
    pub chunks: usize,
}

/// Checks `image` against the device's announced capacities, then sends
/// and commits it. `progress(bytes_sent, total)`.
pub fn flash_plan(
    client: &mut Client,
    image: &[u8],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Flashed, FlashError> {
    let device = client.device().clone();
    let (kind, plan_id) =
        edgefit_artifact::identify(image).map_err(|e| FlashError::BadPlan(e.to_string()))?;
    if kind == ArtifactKind::Plan {
        let plan = Plan::parse(image).map_err(|e| FlashError::BadPlan(e.to_string()))?;
        // A device reads every format version up to its engine's (version 2
        // added tiled segments; untiled plans are still written as 1).
        if plan.header().version > device.engine_version {
            return Err(FlashError::EngineVersion {
                plan: plan.header().version,
                device: device.engine_version,
            });
        }
        if plan.arena_size() > device.arena_bytes as usize {
            return Err(FlashError::ArenaTooSmall {
                needed: plan.arena_size(),
                available: device.arena_bytes,
                board: device.board,
            });
        }
    } else if !device.engines.iter().any(|e| e.starts_with("tract")) {
        return Err(FlashError::NoTractEngine {
            board: device.board,
            engines: device.engines.join(","),
        });
    }
    if image.len() > device.plan_slot_bytes as usize {
        return Err(FlashError::TooLarge {
            plan: image.len(),
            slot: device.plan_slot_bytes,
            board: device.board,
        });
    }
    let total = image.len();
    let begin = HostMsg::plan_begin(plan_id, image).ok_or(FlashError::TooLarge {
        plan: total,
        slot: device.plan_slot_bytes,
        board: device.board.clone(),
    })?;
    let mut sent = 0;
    let transfer = |source| FlashError::Transfer {
        sent: 0,
        total,
        source,
    };
    client.expect_ack(&begin).map_err(transfer)?;
    let chunks = plan_chunks(image);
    let count = chunks.len();
    progress(0, total);
    for chunk in chunks {
        let len = match chunk {
            HostMsg::PlanChunk { data, .. } => data.len(),
            _ => 0,
        };
        if let Err(source) = client.expect_ack(&chunk) {
            // Best effort: tell the device to drop the partial image (it
            // would be dropped at the next PlanBegin or reset anyway).
            let _ = client.expect_ack(&HostMsg::PlanAbort);
            return Err(FlashError::Transfer {
                sent,
                total,
                source,
            });
        }
        sent += len;
        progress(sent, total);
    }
    let stored = match client.request(&HostMsg::PlanCommit) {
        Ok(Reply::PlanStored(info)) => info,
        Ok(_) => {
            return Err(FlashError::Transfer {
                sent,
                total,
                source: ClientError::Unexpected {
                    during: "PlanCommit",
                    got: "an answer other than PlanStored",
                },
            })
        }
        Err(source) => {
            return Err(FlashError::Transfer {
                sent,
                total,
                source,
            })
        }
    };
    Ok(Flashed {
        stored,
        bytes: total,
        chunks: count,
    })
}

/// Where the host keeps a copy of every plan it flashed, named by CRC, so
/// `edgefit bench` finds the plan a device runs without being told.
pub fn plan_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("edgefit").join("plans")
}

/// The cache file of the plan with this image CRC.
pub fn cached_plan_path(crc32: u32) -> PathBuf {
    plan_cache_dir().join(format!("{crc32:08x}.efp"))
}

//! The agent's artifact store: one directory, three files.
//!
//! ```text
//! STORE/active.efa     the artifact that runs (a plan or a tract model)
//! STORE/previous.efa   the one it replaced (kept, and used if active is bad)
//! STORE/upload.tmp     an upload in progress
//! ```
//!
//! An upload is written to `upload.tmp`, checked (size, CRC, the artifact's
//! own checks), `fsync`ed, then installed: `active.efa` is hard-linked to
//! `previous.tmp` and renamed over `previous.efa`, `upload.tmp` is renamed
//! over `active.efa`, and the directory is `fsync`ed. Every step is atomic,
//! so a kill (or power loss) at any point leaves a complete `active.efa`:
//! the old one, or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgefit_engine::AlignedBytes;
use edgefit_proto::{crc32, ErrorCode, PlanInfo, Reject, Transfer};

use crate::artifact::{identify, ArtifactError, ArtifactKind};

const ACTIVE: &str = "active.efa";
const PREVIOUS: &str = "previous.efa";
const PREVIOUS_TMP: &str = "previous.tmp";
const UPLOAD: &str = "upload.tmp";

/// `Storage` error details.
pub mod storage_detail {
    /// Creating or writing the upload file failed.
    pub const WRITE: u32 = 1;
    /// fsync or rename failed while installing.
    pub const INSTALL: u32 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store {0}: it is a file, not a folder: give the agent a folder (created if missing) \
         for its artifacts"
    )]
    NotAFolder(PathBuf),
    #[error("store {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The active artifact, read into memory.
#[derive(Debug, Clone)]
pub struct Stored {
    pub kind: ArtifactKind,
    pub info: PlanInfo,
    /// Shared: a benchmark holds it while the store may replace the file.
    /// On a cache line: the engine's f32 kernels read the weights in place.
    pub bytes: Arc<AlignedBytes>,
}

impl Stored {
    fn from_bytes(bytes: Vec<u8>, slot: u8) -> Result<Self, ArtifactError> {
        let (kind, id) = identify(&bytes)?;
        Ok(Stored {
            kind,
            info: PlanInfo {
                plan_id: id,
                size: bytes.len() as u32,
                crc32: crc32(&bytes),
                slot,
            },
            bytes: Arc::new(AlignedBytes::copy_of(&bytes)),
        })
    }
}

struct Upload {
    file: File,
    xfer: Transfer,
}

/// The store directory and the upload in progress.
pub struct ArtifactStore {
    dir: PathBuf,
    max_bytes: u32,
    upload: Option<Upload>,
}

/// What opening the store found.
pub struct Opened {
    pub store: ArtifactStore,
    /// The artifact to run: `active.efa`, or `previous.efa` if active is
    /// missing or damaged.
    pub active: Option<Stored>,
    /// Files that were present but not valid artifacts, with the reason.
    pub rejected: Vec<(PathBuf, String)>,
}

impl ArtifactStore {
    /// Opens (creating) `dir`, drops a leftover upload, and loads the active
    /// artifact. Uploads larger than `max_bytes` are refused.
    pub fn open(dir: &Path, max_bytes: u32) -> Result<Opened, StoreError> {
        let io_err = |source| StoreError::Io {
            dir: dir.to_owned(),
            source,
        };
        if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(StoreError::NotAFolder(dir.to_owned()));
        }
        fs::create_dir_all(dir).map_err(io_err)?;
        for stale in [UPLOAD, PREVIOUS_TMP] {
            match fs::remove_file(dir.join(stale)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
                _ => {}
            }
        }
        let mut rejected = Vec::new();
        let mut active = None;
        for (name, slot) in [(ACTIVE, 0u8), (PREVIOUS, 1)] {
            let path = dir.join(name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    rejected.push((path, e.to_string()));
                    continue;
                }
            };
            match Stored::from_bytes(bytes, slot) {
                Ok(s) => {
                    active = Some(s);
                    break;
                }
                Err(e) => rejected.push((path, e.to_string())),
            }
        }
        Ok(Opened {
            store: ArtifactStore {
                dir: dir.to_owned(),
                max_bytes,
                upload: None,
            },
            active,
            rejected,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Largest artifact accepted (`DeviceInfo::plan_slot_bytes`).
    pub fn max_bytes(&self) -> u32 {
        self.max_bytes
    }

    /// `PlanBegin`: starts a new upload, dropping any other.
    pub fn begin(&mut self, total_size: u32, crc: u32) -> Result<(), Reject> {
        self.abort();
        let xfer = Transfer::plan(total_size, crc, self.max_bytes)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(UPLOAD))
            .map_err(|_| Reject::new(ErrorCode::Storage, storage_detail::WRITE))?;
        self.upload = Some(Upload { file, xfer });
        Ok(())
    }

    /// `PlanChunk`.
    pub fn chunk(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject> {
        let up = self
            .upload
            .as_mut()
            .ok_or(Reject::new(ErrorCode::UnexpectedMessage, 3))?;
        up.xfer.accept(index, offset, data)?;
        up.file
            .write_all(data)
            .map_err(|_| Reject::new(ErrorCode::Storage, storage_detail::WRITE))
    }

    /// `PlanCommit`: checks size and CRC, reads the upload back, lets
    /// `check` validate it (identify it, load it in an engine), then
    /// installs it atomically. Any failure leaves the active artifact as it
    /// was; an incomplete upload stays open.
    pub fn commit(
        &mut self,
        check: impl FnOnce(&Stored) -> Result<(), Reject>,
    ) -> Result<Stored, Reject> {
        let up = self
            .upload
            .as_mut()
            .ok_or(Reject::new(ErrorCode::UnexpectedMessage, 4))?;
        up.xfer.finish()?;
        let install = |_| Reject::new(ErrorCode::Storage, storage_detail::INSTALL);
        up.file.sync_all().map_err(install)?;
        let upload_path = self.dir.join(UPLOAD);
        let result = (|| {
            let bytes = fs::read(&upload_path).map_err(install)?;
            let stored = Stored::from_bytes(bytes, 0)
                .map_err(|e| Reject::new(ErrorCode::BadPlan, artifact_detail(&e)))?;
            check(&stored)?;
            self.install().map_err(install)?;
            Ok(stored)
        })();
        self.abort();
        result
    }

    fn install(&self) -> io::Result<()> {
        let active = self.dir.join(ACTIVE);
        if active.exists() {
            let tmp = self.dir.join(PREVIOUS_TMP);
            let _ = fs::remove_file(&tmp);
            fs::hard_link(&active, &tmp)?;
            fs::rename(&tmp, self.dir.join(PREVIOUS))?;
        }
        fs::rename(self.dir.join(UPLOAD), &active)?;
        File::open(&self.dir)?.sync_all()
    }

    /// `PlanAbort`, `Reset`, a new `PlanBegin`: drops the upload.
    pub fn abort(&mut self) {
        if self.upload.take().is_some() {
            let _ = fs::remove_file(self.dir.join(UPLOAD));
        }
    }

    /// Whether an upload is open.
    pub fn uploading(&self) -> bool {
        self.upload.is_some()
    }
}

/// `BadPlan` detail for an artifact that does not parse: the engine's plan
/// error code ([`PlanError::code`](edgefit_engine::PlanError::code), as the
/// firmware sends it), or 100 + a tract artifact error.
pub fn artifact_detail(e: &ArtifactError) -> u32 {
    match e {
        ArtifactError::Plan(p) => p.code(),
        ArtifactError::UnknownMagic(_) | ArtifactError::Empty | ArtifactError::TooShort(_) => 100,
        ArtifactError::Truncated { .. } => 101,
        ArtifactError::Version(_) => 102,
        ArtifactError::Field { .. } => 103,
        ArtifactError::Crc { .. } => 104,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An f32 Dense plan `[1, 8] -> [1, 5]`.
    fn plan_bytes() -> Vec<u8> {
        use edgefit_engine::{DType, OpDesc, OpKind, PlanBuilder, Precision, Quant};
        let mut b = PlanBuilder::new(Precision::F32);
        let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[5, 8], &[0.25; 40]);
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size(64)
            .set_plan_id(7);
        b.finish_checked().unwrap()
    }

    #[test]
    fn a_file_is_not_a_store() {
        let file = std::env::temp_dir().join(format!("edgefit-store-file-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        let e = ArtifactStore::open(&file, 1 << 20).err().unwrap();
        assert!(e.to_string().contains("is a file, not a folder"), "{e}");
        let _ = fs::remove_file(&file);
    }

    #[test]
    fn commit_installs_atomically_and_keeps_the_previous() {
        let dir = std::env::temp_dir().join(format!("edgefit-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opened = ArtifactStore::open(&dir, 1 << 20).unwrap();
        assert!(opened.active.is_none());
        let mut store = opened.store;
        let plan = plan_bytes();
        store.begin(plan.len() as u32, crc32(&plan)).unwrap();
        store.chunk(0, 0, &plan).unwrap();
        let first = store.commit(|_| Ok(())).unwrap();
        assert_eq!(first.kind, ArtifactKind::Plan);
        // A bad CRC, a refused check and an abandoned upload leave it active.
        store.begin(plan.len() as u32, 1).unwrap();
        store.chunk(0, 0, &plan).unwrap();
        assert_eq!(
            store.commit(|_| Ok(())).unwrap_err().code,
            ErrorCode::PlanCrcMismatch
        );
        store.begin(plan.len() as u32, crc32(&plan)).unwrap();
        store.chunk(0, 0, &plan).unwrap();
        let refuse = Reject::new(ErrorCode::ArenaTooSmall, 1);
        assert_eq!(store.commit(|_| Err(refuse)).unwrap_err(), refuse);
        store.begin(plan.len() as u32, crc32(&plan)).unwrap();
        store.chunk(0, 0, &plan[..10]).unwrap();
        drop(store);
        let reopened = ArtifactStore::open(&dir, 1 << 20).unwrap();
        assert_eq!(reopened.active.unwrap().info, first.info);
        assert!(!dir.join(UPLOAD).exists());
        // Garbage is refused with the engine's detail.
        let mut store = reopened.store;
        let junk = vec![0x55u8; 100];
        store.begin(100, crc32(&junk)).unwrap();
        store.chunk(0, 0, &junk).unwrap();
        let e = store.commit(|_| Ok(())).unwrap_err();
        assert_eq!((e.code, e.detail), (ErrorCode::BadPlan, 100));
        // A second good commit moves the first to previous.efa; damaging
        // active.efa falls back to it.
        store.begin(plan.len() as u32, crc32(&plan)).unwrap();
        store.chunk(0, 0, &plan).unwrap();
        store.commit(|_| Ok(())).unwrap();
        assert!(dir.join(PREVIOUS).exists());
        fs::write(dir.join(ACTIVE), b"EFPL torn").unwrap();
        let again = ArtifactStore::open(&dir, 1 << 20).unwrap();
        assert_eq!(again.active.unwrap().info.slot, 1);
        assert_eq!(again.rejected.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}

//! Helpers for edgefit's end-to-end tests, which drive the real `edgefit` binary
//! on the bundled models (see `tests/tests/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root. `cargo test` sets `CARGO_MANIFEST_DIR` when it runs a
/// test; it is read at run time first because this library may have been built
/// from another clone that shares the build cache.
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// A path under `models/`.
pub fn model(rel: &str) -> PathBuf {
    repo_root().join("models").join(rel)
}

/// The `edgefit` binary built next to this test executable
/// (`cargo build --workspace --bins` puts it there; `cargo test --workspace` too).
pub fn edgefit_bin() -> PathBuf {
    workspace_bin("edgefit")
}

/// The `edgefit-agent` binary (the Linux agent) built next to this test
/// executable.
pub fn agent_bin() -> PathBuf {
    workspace_bin("edgefit-agent")
}

fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// Runs `edgefit ARGS...` and captures its output.
pub fn edgefit(args: &[&str]) -> Output {
    Command::new(edgefit_bin())
        .args(args)
        .output()
        .expect("run edgefit")
}

/// The captured standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A clean failure: exit status 1, one `error:` line (progress output
/// aside) that contains every needle, no panic.
pub fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(errors[0].contains(n), "`{n}` missing from: {err}");
    }
}

//! `edgefit flash-firmware` end to end, on a machine without a debug probe.
//!
//! The binary must be built with `--features edgefit/probe` (scripts/test.sh
//! builds and tests the workspace with it); without it the subcommand only
//! says that it was built without probe-rs, and these tests fail.
//!
//! The "no probe" test expects no probe attached. On a machine with one, set
//! `EDGEFIT_E2E_PROBE_ATTACHED=1` to skip it (it never writes flash either
//! way: its "ELF" is only a header, which probe-rs rejects before erasing).

use edgefit_e2e::{assert_fails_with, edgefit, stderr};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-flash-firmware-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A file that starts like an ELF (the CLI checks the magic before looking for probes).
fn fake_elf() -> PathBuf {
    let path = tmp("firmware.elf");
    let mut bytes = b"\x7fELF\x01\x01\x01".to_vec();
    bytes.resize(64, 0);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn no_probe_attached_is_a_clear_error() {
    if std::env::var_os("EDGEFIT_E2E_PROBE_ATTACHED").is_some() {
        eprintln!("skipped: EDGEFIT_E2E_PROBE_ATTACHED is set");
        return;
    }
    let elf = fake_elf();
    let out = edgefit(&[
        "flash-firmware",
        elf.to_str().unwrap(),
        "--chip",
        "nRF52840_xxAA",
    ]);
    assert_fails_with(
        &out,
        &[
            "no debug probe found (probe-rs saw 0 probes)",
            "nRF52840-DK's J-Link OB USB port",
        ],
    );
}

#[test]
fn missing_elf_is_a_clear_error() {
    let missing = tmp("no-such-firmware.elf");
    let out = edgefit(&[
        "flash-firmware",
        missing.to_str().unwrap(),
        "--chip",
        "nRF52840_xxAA",
    ]);
    assert_fails_with(
        &out,
        &["read firmware", "no-such-firmware.elf", "No such file"],
    );
}

#[test]
fn non_elf_file_is_refused() {
    let not_elf = tmp("plan.efp");
    std::fs::write(&not_elf, b"EFP1 not firmware").unwrap();
    let out = edgefit(&[
        "flash-firmware",
        not_elf.to_str().unwrap(),
        "--chip",
        "nRF52840_xxAA",
    ]);
    assert_fails_with(&out, &["plan.efp is not an ELF file"]);
}

#[test]
fn unknown_chip_is_named() {
    let elf = fake_elf();
    let out = edgefit(&[
        "flash-firmware",
        elf.to_str().unwrap(),
        "--chip",
        "nRF52840_xxZZ",
    ]);
    // edgefit's message, then probe-rs' (with the chip name), then suggestions.
    assert_fails_with(
        &out,
        &[
            "unknown chip \"nRF52840_xxZZ\"",
            "nRF52840_xxAA",
            "'nRF52840_xxZZ' was not found",
        ],
    );
}

#[test]
fn chip_is_required() {
    let elf = fake_elf();
    let out = edgefit(&["flash-firmware", elf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--chip"), "{}", stderr(&out));
}

#[test]
fn bad_probe_selector_is_named() {
    let elf = fake_elf();
    let out = edgefit(&[
        "flash-firmware",
        elf.to_str().unwrap(),
        "--chip",
        "nRF52840_xxAA",
        "--probe",
        "j-link",
    ]);
    assert_fails_with(&out, &["bad --probe \"j-link\"", "VID:PID[:SERIAL]"]);
}

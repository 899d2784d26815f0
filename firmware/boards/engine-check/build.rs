//! Puts memory.x (mps2-an386's map) where cortex-m-rt's link.x finds it, and
//! embeds optional int8 plans to run end to end: set EDGEFIT_CHECK_PLANS to a
//! colon-separated list of .efp files (compiled with --no-scratch); none by
//! default (the kernel checks need no plan).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EDGEFIT_CHECK_PLANS");
    let plans = env::var("EDGEFIT_CHECK_PLANS").unwrap_or_default();
    let mut src =
        String::from("/// Plans embedded at build time (EDGEFIT_CHECK_PLANS): name, bytes.\n");
    src.push_str("pub static PLANS: &[(&str, &[u8])] = &[\n");
    for (i, p) in plans.split(':').filter(|p| !p.is_empty()).enumerate() {
        let path = PathBuf::from(p);
        println!("cargo:rerun-if-changed={}", path.display());
        let dst = out.join(format!("plan{i}.efp"));
        fs::copy(&path, &dst).unwrap_or_else(|e| panic!("EDGEFIT_CHECK_PLANS: {p}: {e}"));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The engine reads plans at any alignment.
        let dst = dst.display().to_string();
        src.push_str(&format!("    ({name:?}, include_bytes!({dst:?})),\n"));
    }
    src.push_str("];\n");
    fs::write(out.join("plans.rs"), src).expect("write plans.rs");
}

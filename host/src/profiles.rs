//! Where the device profiles live, and loading the built-in ones together
//! with a user's own (`--profile FILE`).

use std::path::{Path, PathBuf};

use edgefit_profiles::{builtin_profiles, load_profile, Profile, ProfileError};

/// The `profiles/` folder: `EDGEFIT_PROFILES` if set, else that of the
/// checkout the current directory is in, else that of the checkout this
/// binary was built from (as for the bundled data).
pub fn profiles_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGEFIT_PROFILES") {
        return PathBuf::from(dir);
    }
    let in_checkout = std::env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .map(|d| d.join("profiles"))
            .find(|d| d.join("this-machine.toml").is_file())
    });
    in_checkout.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"))
}

/// The built-in profiles followed by `extra` files; a user's profile with a
/// built-in name replaces the built-in one.
pub fn load_profiles(extra: &[PathBuf]) -> Result<Vec<Profile>, ProfileError> {
    let mut all = builtin_profiles(&profiles_dir())?;
    for path in extra {
        let p = load_profile(path)?;
        all.retain(|q| q.name != p.name);
        all.push(p);
    }
    Ok(all)
}

//! What the agent reports about the machine it runs on, read from Linux:
//! board and core names, RAM, storage, and the process's peak resident set.

use std::path::Path;

/// The board: the device-tree model (Raspberry Pi, Jetson), else the DMI
/// product name (x86), else the kernel's machine name.
pub fn board_name(root: &Path) -> String {
    for f in [
        "sys/firmware/devicetree/base/model",
        "proc/device-tree/model",
        "sys/class/dmi/id/product_name",
    ] {
        if let Ok(s) = std::fs::read_to_string(root.join(f)) {
            let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            if !s.is_empty() {
                return s.to_owned();
            }
        }
    }
    format!("linux-{}", std::env::consts::ARCH)
}

/// The CPU: `/proc/cpuinfo`'s model name (x86) or CPU part (Arm), with the
/// architecture (the reader the host shares, `edgefit_artifact::cpu_name`).
pub fn core_name(root: &Path) -> String {
    edgefit_artifact::cpu_name(root)
}

/// The fastest core clock (cpufreq), 0 if unknown.
pub fn clock_hz(root: &Path) -> u32 {
    std::fs::read_to_string(root.join("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(0, |khz| u32::try_from(khz * 1000).unwrap_or(u32::MAX))
}

/// A `kB` field of a `/proc` status-style file, in bytes.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Total RAM (`MemTotal`).
pub fn ram_bytes(root: &Path) -> u64 {
    std::fs::read_to_string(root.join("proc/meminfo"))
        .ok()
        .and_then(|t| kb_field(&t, "MemTotal"))
        .unwrap_or(0)
}

/// Size of the filesystem holding `dir` (0 if unknown).
pub fn storage_bytes(dir: &Path) -> u64 {
    rustix::fs::statvfs(dir).map_or(0, |st| st.f_blocks.saturating_mul(st.f_frsize))
}

/// Resets the process's peak resident set (`VmHWM`) to its current size, so
/// the next reading is the peak of what ran since (Linux >= 4.0;
/// `clear_refs` value 5). Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| kb_field(&t, "VmHWM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields_and_the_real_process() {
        let status = "Name:\tagent\nVmPeak:\t  123456 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(kb_field(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(kb_field(status, "VmSwap"), None);
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        assert!(ram_bytes(Path::new("/")) > 0);
        // Touching 64 MiB raises the peak past what it was after a reset.
        reset_peak_rss();
        let before = peak_rss_bytes().unwrap();
        let big = vec![1u8; 64 << 20];
        assert!(big.iter().step_by(4096).all(|&b| b == 1));
        assert!(peak_rss_bytes().unwrap() >= before + (60 << 20));
    }
}

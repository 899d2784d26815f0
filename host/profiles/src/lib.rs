//! Device profiles: one TOML file per board (`profiles/*.toml` in the
//! repository), describing what a compiled plan must fit into and how the
//! board's latency and energy are estimated when nothing was measured.
//!
//! # Schema
//!
//! Every field is required unless marked optional; unknown fields are errors.
//! Every number says where it comes from (`*_source`, `spec_source`).
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `name` | string | profile name, as given to `--profiles` (letters, digits, `-`, `_`, `.`) |
//! | `description` | string | the board in words |
//! | `kind` | `"mcu"` \| `"linux"` | bare-metal microcontroller, or a board running Linux |
//! | `core` | string | CPU core(s), e.g. `"Arm Cortex-M4F"` |
//! | `clock_mhz` | integer > 0 | CPU clock used by the latency estimate |
//! | `ram_bytes` | integer > 0 | RAM available to the plan's arena and engine state |
//! | `flash_bytes` | integer > 0 | MCU: flash for the plan; Linux: storage for the model file |
//! | `plan_flash_bytes` | optional, 0 < integer <= `flash_bytes` | the largest plan edgefit's firmware for the board stores (one A/B slot); fits use it when set |
//! | `firmware_ram_bytes` | optional, integer < `ram_bytes` | RAM edgefit's firmware keeps for itself besides the plan's arena (state, buffers, stack; default 0): fits and `compile --profile` budget the plan's arena and engine state against `ram_bytes` less this |
//! | `fpu` | bool | hardware floating point |
//! | `dsp` | bool | packed-integer SIMD: Arm DSP extension, NEON, Xtensa PIE, AVX2... |
//! | `simd` | string | which, e.g. `"none"`, `"armv7e-m dsp"`, `"neon"`, `"avx2"` |
//! | `gpu` | bool | a GPU usable for inference |
//! | `gpu_name` | string, optional | that GPU (only with `gpu = true`) |
//! | `cycles_per_mac` | number > 0 | CPU cycles per int8 multiply-accumulate (latency estimate) |
//! | `cycles_per_mac_source` | string | where `cycles_per_mac` comes from (measurement or assumption) |
//! | `spec_source` | string | where core, clock, RAM and flash come from |
//! | `notes` | string, optional | caveats (plan slot limits, what is not counted...) |
//! | `[power] typical_active_w` | number > 0 | typical power while running inference, watts |
//! | `[power] source` | string | where that figure comes from (datasheet table, measurement) |
//! | `[transport] kind` | `"serial"` \| `"tcp"` \| `"qemu"` \| `"local"` | how edgefit reaches the device |
//! | `[transport] default_port` | string, optional | e.g. `"tcp:127.0.0.1:4545"`, `"/dev/ttyACM0"` |
//!
//! # Estimates
//!
//! Where a board did not run the plan, its latency and energy are estimated:
//!
//! - latency (s) = MACs × `cycles_per_mac` / (`clock_mhz` × 10⁶)
//!   ([`Profile::estimated_latency_s`]);
//! - energy (J) = `typical_active_w` × latency ([`Profile::estimated_energy_j`]),
//!   with the measured latency when there is one.
//!
//! Both are labelled estimates wherever they are reported.
//!
//! # Errors
//!
//! A malformed file, a value of the wrong type, a missing or unknown field and
//! a failed check all name the file, the line (1-based) and the field, e.g.
//! ``profiles/x.toml line 7: field `ram_bytes`: invalid type: string "lots", expected u64``.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One device, as described by its profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub core: String,
    pub clock_mhz: u32,
    pub ram_bytes: u64,
    /// MCU: flash for the plan; Linux: storage for the model file.
    pub flash_bytes: u64,
    /// The largest plan edgefit's firmware for this board can store (one A/B
    /// plan slot), when that is less than `flash_bytes`; fits are judged
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_flash_bytes: Option<u64>,
    /// RAM edgefit's firmware keeps besides the arena (see
    /// [`Profile::arena_budget_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_ram_bytes: Option<u64>,
    pub fpu: bool,
    /// Packed-integer SIMD (Arm DSP extension, NEON, Xtensa PIE, AVX2...).
    pub dsp: bool,
    pub simd: String,
    pub gpu: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_name: Option<String>,
    pub cycles_per_mac: f64,
    pub cycles_per_mac_source: String,
    pub spec_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub power: Power,
    pub transport: Transport,
    /// The file this profile was loaded from.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Bare-metal microcontroller or Linux board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Mcu,
    Linux,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mcu => "mcu",
            Kind::Linux => "linux",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Typical power while running inference, and where the figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    pub typical_active_w: f64,
    pub source: String,
}

/// How edgefit reaches the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    pub kind: TransportKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_port: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// A serial port (USB CDC, UART bridge).
    Serial,
    /// A TCP connection to the board.
    Tcp,
    /// QEMU's emulated UART on a local TCP socket.
    Qemu,
    /// This host itself: nothing to connect to.
    Local,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Serial => "serial",
            TransportKind::Tcp => "tcp",
            TransportKind::Qemu => "qemu",
            TransportKind::Local => "local",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a plan fits a profile: available minus needed, in bytes; negative is
/// the shortfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Fit {
    pub ram_margin: i64,
    pub flash_margin: i64,
}

impl Fit {
    pub fn fits_ram(&self) -> bool {
        self.ram_margin >= 0
    }

    pub fn fits_flash(&self) -> bool {
        self.flash_margin >= 0
    }

    /// Both RAM and flash suffice.
    pub fn fits(&self) -> bool {
        self.fits_ram() && self.fits_flash()
    }
}

fn margin(available: u64, needed: u64) -> i64 {
    let m = i128::from(available) - i128::from(needed);
    m.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Profile {
    /// RAM and flash margins for a plan needing `flash_needed` bytes of flash
    /// (or storage) and `ram_needed` bytes of RAM.
    pub fn fits(&self, flash_needed: u64, ram_needed: u64) -> Fit {
        Fit {
            ram_margin: margin(self.arena_budget_bytes(), ram_needed),
            flash_margin: margin(self.plan_limit_bytes(), flash_needed),
        }
    }

    /// RAM a plan's arena (activations and scratch) and the engine's state
    /// may take on this board: `ram_bytes` less what the firmware keeps
    /// (`firmware_ram_bytes`, 0 when unset). Fits are judged against it.
    pub fn arena_budget_bytes(&self) -> u64 {
        self.ram_bytes
            .saturating_sub(self.firmware_ram_bytes.unwrap_or(0))
    }

    /// Flash a plan may use: `plan_flash_bytes` if set, else `flash_bytes`.
    pub fn plan_limit_bytes(&self) -> u64 {
        self.plan_flash_bytes.unwrap_or(self.flash_bytes)
    }

    /// Estimated latency of `macs` multiply-accumulates, in seconds:
    /// MACs × `cycles_per_mac` / clock.
    pub fn estimated_latency_s(&self, macs: u64) -> f64 {
        macs as f64 * self.cycles_per_mac / (f64::from(self.clock_mhz) * 1e6)
    }

    /// Estimated energy of an inference taking `latency_s` seconds, in
    /// joules: `typical_active_w` × latency.
    pub fn estimated_energy_j(&self, latency_s: f64) -> f64 {
        self.power.typical_active_w * latency_s
    }

    /// Checks the values serde cannot: returns the offending field (dotted
    /// path) and what is wrong with it.
    fn check(&self) -> Result<(), (&'static str, String)> {
        fn positive(field: &'static str, v: u64) -> Result<(), (&'static str, String)> {
            if v == 0 {
                return Err((field, "must be greater than 0".to_owned()));
            }
            Ok(())
        }
        fn positive_f(field: &'static str, v: f64) -> Result<(), (&'static str, String)> {
            if !(v.is_finite() && v > 0.0) {
                return Err((
                    field,
                    format!("must be a finite number greater than 0 (got {v})"),
                ));
            }
            Ok(())
        }
        fn text(field: &'static str, v: &str) -> Result<(), (&'static str, String)> {
            if v.trim().is_empty() {
                return Err((field, "must not be empty".to_owned()));
            }
            Ok(())
        }
        if let Some(v) = self.plan_flash_bytes {
            positive("plan_flash_bytes", v)?;
            if v > self.flash_bytes {
                return Err((
                    "plan_flash_bytes",
                    format!("{v} is more than flash_bytes ({})", self.flash_bytes),
                ));
            }
        }
        if let Some(v) = self.firmware_ram_bytes {
            if v >= self.ram_bytes {
                return Err((
                    "firmware_ram_bytes",
                    format!(
                        "{v} leaves no RAM of ram_bytes ({}) for a plan",
                        self.ram_bytes
                    ),
                ));
            }
        }
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err((
                "name",
                format!(
                    "must be non-empty and use only letters, digits, '-', '_' and '.' (got {:?})",
                    self.name
                ),
            ));
        }
        text("core", &self.core)?;
        text("simd", &self.simd)?;
        text("spec_source", &self.spec_source)?;
        text("cycles_per_mac_source", &self.cycles_per_mac_source)?;
        text("power.source", &self.power.source)?;
        positive("clock_mhz", u64::from(self.clock_mhz))?;
        positive("ram_bytes", self.ram_bytes)?;
        positive("flash_bytes", self.flash_bytes)?;
        positive_f("cycles_per_mac", self.cycles_per_mac)?;
        positive_f("power.typical_active_w", self.power.typical_active_w)?;
        if self.gpu_name.is_some() && !self.gpu {
            return Err(("gpu_name", "is only allowed with `gpu = true`".to_owned()));
        }
        if let Some(port) = &self.transport.default_port {
            text("transport.default_port", port)?;
        }
        Ok(())
    }
}

/// Why profiles could not be loaded or found.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot list the profiles folder: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, or not a profile: a value of the wrong type, a missing
    /// or unknown field.
    #[error("{}", located(path, *line, field.as_deref(), message))]
    Parse {
        path: PathBuf,
        /// 1-based.
        line: Option<usize>,
        /// Dotted path, e.g. `power.typical_active_w`.
        field: Option<String>,
        message: String,
    },
    /// Parsed, but a value is out of range.
    #[error("{}", located(path, *line, Some(field.as_str()), message))]
    Invalid {
        path: PathBuf,
        /// 1-based.
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("no profiles (*.toml) in {}", dir.display())]
    Empty { dir: PathBuf },
    #[error("profile name `{name}` is used by both {} and {}", first.display(), second.display())]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("unknown profile `{name}`; known profiles: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
}

fn located(path: &Path, line: Option<usize>, field: Option<&str>, message: &str) -> String {
    let mut s = path.display().to_string();
    if let Some(line) = line {
        s.push_str(&format!(" line {line}"));
    }
    if let Some(field) = field {
        s.push_str(&format!(": field `{field}`"));
    }
    s.push_str(": ");
    s.push_str(message);
    s
}

/// Loads and checks one profile file.
pub fn load_profile(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_profile(&text, path)
}

/// Parses and checks a profile from `text`; `path` is where it came from
/// (used in errors and stored in [`Profile::path`]).
pub fn parse_profile(text: &str, path: &Path) -> Result<Profile, ProfileError> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // Not TOML: the line of the error, and the key on it if any.
            let line = e.span().map(|s| line_of(text, s.start));
            let field = line.and_then(|l| key_on_line(text, l));
            return Err(ProfileError::Parse {
                path: path.to_owned(),
                line,
                field,
                message: one_line(e.message()),
            });
        }
    };
    let mut profile: Profile = toml::from_str(text).map_err(|e| {
        let (line, field) = match e.span() {
            Some(span) => {
                let (keys, at) = locate(&doc, &span);
                let mut keys = keys;
                // serde names missing and unknown fields only in the message.
                if let Some(named) = backticked(e.message()) {
                    if keys.last().map(String::as_str) != Some(named) {
                        keys.push(named.to_owned());
                    }
                }
                let field = (!keys.is_empty()).then(|| keys.join("."));
                (Some(line_of(text, at)), field)
            }
            None => (None, backticked(e.message()).map(str::to_owned)),
        };
        ProfileError::Parse {
            path: path.to_owned(),
            line,
            field,
            message: one_line(e.message()),
        }
    })?;
    if let Err((field, message)) = profile.check() {
        let line = key_span(&doc, field).map(|s| line_of(text, s.start));
        return Err(ProfileError::Invalid {
            path: path.to_owned(),
            line,
            field: field.to_owned(),
            message,
        });
    }
    profile.path = Some(path.to_owned());
    Ok(profile)
}

/// Loads every `*.toml` file in `dir`, sorted by file name. Two files with
/// the same profile name are an error, as is a folder without profiles.
pub fn builtin_profiles(dir: &Path) -> Result<Vec<Profile>, ProfileError> {
    let read_dir_err = |source| ProfileError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
        let path = entry.map_err(read_dir_err)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(ProfileError::Empty {
            dir: dir.to_owned(),
        });
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut profiles: Vec<Profile> = Vec::with_capacity(files.len());
    for path in &files {
        let p = load_profile(path)?;
        if let Some(q) = profiles.iter().find(|q| q.name == p.name) {
            return Err(ProfileError::Duplicate {
                name: p.name,
                first: q.path.clone().unwrap_or_default(),
                second: path.clone(),
            });
        }
        profiles.push(p);
    }
    Ok(profiles)
}

/// The profile called `name`; an unknown name lists the known ones.
pub fn find_profile<'a>(profiles: &'a [Profile], name: &str) -> Result<&'a Profile, ProfileError> {
    profiles
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ProfileError::Unknown {
            name: name.to_owned(),
            known: profiles.iter().map(|p| p.name.clone()).collect(),
        })
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key assigned on 1-based `line`, prefixed by the table header above it
/// (`power.source`), for errors where the document did not parse.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if i + 1 == line {
            let (key, _) = t.split_once('=')?;
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
                return None;
            }
            return Some(match table {
                Some(table) => format!("{table}.{key}"),
                None => key.to_owned(),
            });
        }
        if t.starts_with('[') {
            let header = t.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("").trim();
            table = (!header.is_empty()).then(|| header.to_owned());
        }
    }
    None
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The keys down to the innermost key or value whose span holds `span`, and
/// the offset to report: that key's, else `span`'s start. (A `[table]`'s value
/// span is its header only, so tables are searched whatever their span.)
fn locate(doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> (Vec<String>, usize) {
    fn search(table: &DeTable<'_>, span: &Range<usize>, keys: &mut Vec<String>) -> Option<usize> {
        for (k, v) in table.iter() {
            if contains(&k.span(), span) {
                keys.push(k.get_ref().to_string());
                return Some(k.span().start);
            }
            let depth = keys.len();
            keys.push(k.get_ref().to_string());
            if let DeValue::Table(inner) = v.get_ref() {
                if let Some(at) = search(inner, span, keys) {
                    return Some(at);
                }
            }
            if contains(&v.span(), span) {
                return Some(k.span().start);
            }
            keys.truncate(depth);
        }
        None
    }
    let mut keys = Vec::new();
    let at = search(doc.get_ref(), span, &mut keys).unwrap_or(span.start);
    (keys, at)
}

/// The span of the key at dotted `path`.
fn key_span(doc: &Spanned<DeTable<'_>>, path: &str) -> Option<Range<usize>> {
    let mut table = doc.get_ref();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(k.span());
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// The first `quoted` word of a serde message (the field of "missing field
/// `x`" and "unknown field `x`, expected ...").
fn backticked(message: &str) -> Option<&str> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let (_, rest) = message.split_once('`')?;
    let (word, _) = rest.split_once('`')?;
    Some(word)
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;

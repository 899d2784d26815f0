//! Scratch sizes: how many bytes of the plan's scratch area each kernel
//! uses for its fast path. The plan writer sums nothing: a plan's
//! `scratch_bytes` is the maximum over its ops (ops run one at a time), and
//! the executor gives a kernel its fast path only when the plan's scratch
//! holds what this module says. Both sides call these same functions.

use super::Geom;
use crate::format::Precision;

/// Scratch for a Conv2d of precision `p` (regular or depthwise).
pub fn conv(p: Precision, g: &Geom, depthwise: bool) -> usize {
    match p {
        Precision::F16 => conv_f16(g, depthwise),
        Precision::Int8 if !depthwise => {
            let k = g.kernel_h * g.kernel_w * g.in_c;
            gemm_bytes(k, g.out_c)
        }
        Precision::Int8 | Precision::F32 => 0,
    }
}

/// Scratch for a regular int8 Conv2d whose weights are stored sparse
/// (`BitmapRows`): the weights decoded to dense, then what the dense
/// kernel's fast path wants after them. With less, the zero-skipping
/// sparse kernel runs without scratch.
pub fn conv_sparse_i8(g: &Geom) -> usize {
    sparse_decoded(g).saturating_add(conv(Precision::Int8, g, false))
}

/// Bytes of a regular conv's weights decoded to dense int8.
pub fn sparse_decoded(g: &Geom) -> usize {
    g.out_c
        .saturating_mul(g.kernel_h)
        .saturating_mul(g.kernel_w)
        .saturating_mul(g.in_c)
}

/// Output pixels per int8 GEMM tile.
pub const MR: usize = 6;
/// Output channels per int8 GEMM weight panel.
pub const NR: usize = 16;
/// Per-panel constants after the packed weights: bias, multiplier, left
/// and right shift of its [`NR`] channels, i32 each.
pub const PANEL_CONSTS: usize = 4 * NR * 4;
/// Target size of the packed int8 weight block (whole panels, at least one).
pub const GEMM_WEIGHT_BYTES: usize = 256 * 1024;

/// Output pixels per tile of the AVX-512 VNNI GEMM (x86-64).
pub const MRV: usize = 12;

/// Scratch layout of an int8 GEMM conv: panels of [`NR`] channels and a
/// tile of pixel rows, both made of 4-byte units of taps (an i16 pair for
/// the AVX2 kernel, a byte quad for the VNNI one).
#[derive(Debug, Clone, Copy)]
pub struct GemmLayout {
    /// 4-byte units per row: `ceil(k / 2)` pairs or `ceil(k / 4)` quads.
    pub units: usize,
    /// Bytes of one packed panel: `units * NR * 4` of weights, then
    /// [`PANEL_CONSTS`] of requantisation constants.
    pub panel_bytes: usize,
    /// Panels packed at a time.
    pub panels: usize,
    /// Bytes of the pixel tile: `rows * units * 4`.
    pub tile_bytes: usize,
}

impl GemmLayout {
    /// Scratch bytes the layout uses: the panels, then the tile.
    pub fn bytes(&self) -> usize {
        self.panels * self.panel_bytes + self.tile_bytes
    }
}

/// The AVX2 GEMM layout for reduction length `k` (i16 tap pairs, [`MR`]
/// pixel rows) that fits in `avail` bytes, or `None` if not even one
/// panel does.
pub fn gemm_layout(k: usize, n: usize, avail: usize) -> Option<GemmLayout> {
    packed_layout(k.div_ceil(2), MR, n, avail)
}

/// The AVX-512 VNNI GEMM layout (byte tap quads, [`MRV`] pixel rows). It
/// runs in the scratch sized for the AVX2 kernel ([`gemm_bytes`]): its
/// panels are half as large (bytes, not i16 pairs) and its tile of [`MRV`]
/// rows of `k` bytes no larger than the AVX2 tile of [`MR`] rows of `k`
/// i16, give or take the rounding to 4 taps, which one panel covers.
pub fn vnni_layout(k: usize, n: usize, avail: usize) -> Option<GemmLayout> {
    packed_layout(k.div_ceil(4), MRV, n, avail)
}

/// As many panels as fit in `avail` after the tile, up to all
/// `ceil(n / NR)`; `None` if not even one does.
fn packed_layout(units: usize, rows: usize, n: usize, avail: usize) -> Option<GemmLayout> {
    let panel_bytes = units.checked_mul(NR * 4)?.checked_add(PANEL_CONSTS)?;
    let tile_bytes = units.checked_mul(rows * 4)?;
    let room = avail.checked_sub(tile_bytes)?;
    let panels = (room / panel_bytes.max(1)).min(n.div_ceil(NR));
    (panels >= 1 && units >= 1).then_some(GemmLayout {
        units,
        panel_bytes,
        panels,
        tile_bytes,
    })
}

/// Scratch the int8 GEMM conv asks for: the pixel tile plus as many weight
/// panels as fit in [`GEMM_WEIGHT_BYTES`] (at least one).
fn gemm_bytes(k: usize, n: usize) -> usize {
    let kpairs = k.div_ceil(2);
    let panel = kpairs.saturating_mul(NR * 4).saturating_add(PANEL_CONSTS);
    let panels = (GEMM_WEIGHT_BYTES / panel.max(1)).clamp(1, n.div_ceil(NR).max(1));
    panel
        .saturating_mul(panels)
        .saturating_add(kpairs.saturating_mul(MR * 4))
}

/// Target size of the f16 weight-widening buffer of a regular conv: as many
/// whole output-channel kernels (as f32) as fit, at least one.
pub const F16_WIDEN_BYTES: usize = 64 * 1024;

/// f16 conv: the weights widened to f32, all of them for a depthwise conv,
/// a block of output channels' kernels for a regular one. (The kernel takes
/// as many channels as the scratch it gets holds, at least one.)
fn conv_f16(g: &Geom, depthwise: bool) -> usize {
    let k = g.kernel_h * g.kernel_w * if depthwise { 1 } else { g.in_c };
    if depthwise {
        k.saturating_mul(g.in_c).saturating_mul(4)
    } else {
        let per = k.saturating_mul(4);
        let nb = (F16_WIDEN_BYTES / per.max(1)).clamp(1, g.out_c.max(1));
        per.saturating_mul(nb)
    }
}

/// Scratch for a Dense of precision `p` with `in_f` inputs and `out_f`
/// outputs.
pub fn dense(p: Precision, in_f: usize, out_f: usize) -> usize {
    let _ = (p, in_f, out_f);
    0
}

/// Rounds up to the header's 16-byte scratch unit.
pub fn round(bytes: usize) -> usize {
    bytes.div_ceil(crate::format::SCRATCH_UNIT) * crate::format::SCRATCH_UNIT
}

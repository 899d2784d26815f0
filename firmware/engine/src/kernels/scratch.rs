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
        Precision::F16 if !depthwise => conv_f16(g, false).max(float_pack_bytes(g)),
        Precision::F16 => conv_f16(g, true),
        Precision::F32 if !depthwise => float_pack_bytes(g),
        Precision::Int8 if !depthwise => {
            let k = g.kernel_h * g.kernel_w * g.in_c;
            packed_bytes(k.div_ceil(2), g.out_c).max(wino_bytes(g))
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
/// runs in the scratch sized for the AVX2 kernel ([`conv`]): its
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

/// Scratch the int8 GEMM conv asks for, with `units` i16 pairs per row:
/// the tile of [`MR`] rows plus as many panels as fit in
/// [`GEMM_WEIGHT_BYTES`] (at least one).
fn packed_bytes(units: usize, n: usize) -> usize {
    let panel = units.saturating_mul(NR * 4).saturating_add(PANEL_CONSTS);
    let panels = (GEMM_WEIGHT_BYTES / panel.max(1)).clamp(1, n.div_ceil(NR).max(1));
    panel
        .saturating_mul(panels)
        .saturating_add(units.saturating_mul(MR * 4))
}

/// Transform points of Winograd F(2x2, 3x3): a 4x4 input tile per 2x2
/// output pixels.
pub const WINO_POINTS: usize = 16;
/// Most scratch the Winograd conv asks for. Within it, it transforms each
/// weight and each input tile once; a 28x28x512 layer's (VGG16) input
/// tiles take 3.2 MiB, more than that: its inputs are transformed once per
/// block of weight panels (5 blocks).
pub const WINO_SCRATCH_BYTES: usize = 2 * 1024 * 1024;
/// Most input channels of an exact int8 Winograd conv: the kernel computes
/// 4x the conv's sum, which must fit i32 (`4 · 9 · C · 255 · 128 < 2^31`
/// for `C <= 1827`).
pub const WINO_MAX_C: usize = 1024;

/// Whether a regular int8 conv runs as Winograd F(2x2, 3x3) on x86 AVX2
/// (`gemm_x86`'s micro-kernel on transformed tiles): 3x3, stride 1,
/// channels a multiple of 16 up to [`WINO_MAX_C`], and an image large
/// enough to pay for transforming the weights on every run. Per pair of
/// input and output channels the products drop from 9 per pixel to 16 per
/// 2x2 tile; the weight transform costs about 13 cycles per pair (derived
/// from ResNet-50's 7x7 layers' measured times, where Winograd, 256 products
/// against the direct conv's 441, was the slower), so the drop must be at least 512 products
/// and at least a quarter: a 14x14 image (1764 against 784) qualifies, 7x7
/// and 10x10 do not.
pub fn winograd_applies(g: &Geom) -> bool {
    let (direct, wino) = (9 * g.out_h * g.out_w, WINO_POINTS * wino_tiles(g));
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (3, 3, 1, 1)
        && g.in_c.is_multiple_of(16)
        && (16..=WINO_MAX_C).contains(&g.in_c)
        && direct >= wino + 512
        && 4 * wino <= 3 * direct
}

/// Scratch layout of the Winograd conv: blocks of panels of [`NR`] output
/// channels' transformed weights ([`WINO_POINTS`] x `C / 2` i16 pairs per
/// channel, then [`PANEL_CONSTS`]), and the transformed input tiles: the
/// [`MR`] tiles in work (transformed again for each block of panels), or
/// all the image's tiles (transformed once).
#[derive(Debug, Clone, Copy)]
pub struct WinoLayout {
    /// i16 pairs per transformed row: `C / 2`.
    pub cpairs: usize,
    /// Bytes of one panel.
    pub panel_bytes: usize,
    /// Panels per block.
    pub panels: usize,
    /// Transformed tiles kept per point: [`MR`], or all the tiles.
    pub rows: usize,
}

impl WinoLayout {
    /// Bytes of the transformed input tiles.
    pub fn tile_bytes(&self) -> usize {
        WINO_POINTS * self.rows * self.cpairs * 4
    }

    /// Scratch bytes the layout uses: the panels, then the tiles.
    pub fn bytes(&self) -> usize {
        self.panels * self.panel_bytes + self.tile_bytes()
    }

    /// Whether every tile is transformed once (else once per block).
    pub fn all_tiles(&self, g: &Geom) -> bool {
        self.rows == wino_tiles(g)
    }
}

/// 2x2 output tiles of a conv.
pub fn wino_tiles(g: &Geom) -> usize {
    g.out_h.div_ceil(2) * g.out_w.div_ceil(2)
}

/// The candidate Winograd layouts of `g`, if it qualifies
/// ([`winograd_applies`]): all the panels and [`MR`] tiles, then one
/// panel and all the tiles, then one panel and [`MR`] tiles.
fn wino_candidates(g: &Geom) -> Option<[WinoLayout; 3]> {
    if !winograd_applies(g) {
        return None;
    }
    let cpairs = g.in_c / 2;
    let panel_bytes = WINO_POINTS * cpairs * NR * 4 + PANEL_CONSTS;
    let l = |panels, rows| WinoLayout {
        cpairs,
        panel_bytes,
        panels,
        rows,
    };
    let all = g.out_c.div_ceil(NR);
    Some([l(all, MR), l(1, wino_tiles(g)), l(1, MR)])
}

/// The Winograd layout for `avail` bytes of scratch: each weight and tile
/// transformed once if either way fits (all the panels, or all the tiles
/// and as many panels as fit), else as many panels per block as fit; `None`
/// if the conv does not qualify or one panel and [`MR`] tiles do not fit.
pub fn wino_layout(g: &Geom, avail: usize) -> Option<WinoLayout> {
    let [by_weights, by_tiles, least] = wino_candidates(g)?;
    let more_panels = |l: WinoLayout| {
        let room = avail.checked_sub(l.tile_bytes())?;
        let panels = (room / l.panel_bytes).min(by_weights.panels);
        (panels >= 1).then_some(WinoLayout { panels, ..l })
    };
    if by_weights.bytes() <= avail {
        Some(by_weights)
    } else if by_tiles.bytes() <= avail {
        more_panels(by_tiles)
    } else {
        more_panels(least)
    }
}

/// Scratch the Winograd conv asks for: the smaller once-each layout, or
/// [`WINO_SCRATCH_BYTES`] if both are larger (at least one panel and
/// [`MR`] tiles); 0 if it does not apply.
fn wino_bytes(g: &Geom) -> usize {
    wino_candidates(g).map_or(0, |[w, t, least]| {
        w.bytes()
            .min(t.bytes())
            .min(WINO_SCRATCH_BYTES)
            .max(least.bytes())
    })
}

/// Output pixels per tile of the packed float conv (x86-64 AVX-512).
pub const FP_MR: usize = 6;
/// Output channels per packed block of the float conv.
pub const FP_NR: usize = 8;
/// Most packed blocks per chunk.
pub const FP_MAX_BLOCKS: usize = 12;
/// Target size of the packed float weight chunk (whole blocks, at least one).
pub const FP_WEIGHT_BYTES: usize = 384 * 1024;

/// Scratch layout of the packed float conv (f32 or f16 weights, f32 sums):
/// chunks of [`FP_NR`]-channel blocks of weights as f32, each kernel row's
/// 8-tap groups interleaved two channels at a time, then a tile of
/// [`FP_MR`] input rows with every 8-value group stored twice.
#[derive(Debug, Clone, Copy)]
pub struct FloatPackLayout {
    /// Blocks packed at a time.
    pub blocks: usize,
    /// Bytes of one block: `FP_NR · K · 4`.
    pub block_bytes: usize,
    /// Bytes of the input tile: `FP_MR · 2 · kernel_w · C · 4`.
    pub tile_bytes: usize,
}

impl FloatPackLayout {
    /// Scratch bytes the layout uses: the blocks, then the tile.
    pub fn bytes(&self) -> usize {
        self.blocks * self.block_bytes + self.tile_bytes
    }
}

/// The packed float conv's layout for a regular conv that fits in `avail`
/// bytes, or `None` if the conv cannot be packed (`C` not a multiple of 8)
/// or not even one block fits.
pub fn float_pack_layout(g: &Geom, avail: usize) -> Option<FloatPackLayout> {
    let (block_bytes, tile_bytes) = float_pack_sizes(g)?;
    let room = avail.checked_sub(tile_bytes)?;
    let blocks = (room / block_bytes.max(1))
        .min(g.out_c.div_ceil(FP_NR))
        .min(FP_MAX_BLOCKS);
    (blocks >= 1).then_some(FloatPackLayout {
        blocks,
        block_bytes,
        tile_bytes,
    })
}

/// One block's bytes and the tile's, if the conv can be packed.
fn float_pack_sizes(g: &Geom) -> Option<(usize, usize)> {
    if g.in_c == 0 || !g.in_c.is_multiple_of(8) || g.kernel_h == 0 || g.kernel_w == 0 {
        return None;
    }
    let row = g.kernel_w.checked_mul(g.in_c)?;
    let block = row.checked_mul(g.kernel_h)?.checked_mul(FP_NR * 4)?;
    let tile = row.checked_mul(FP_MR * 2 * 4)?;
    Some((block, tile))
}

/// Scratch the packed float conv asks for: the tile plus as many blocks as
/// fit in [`FP_WEIGHT_BYTES`] (at least one, at most all and
/// [`FP_MAX_BLOCKS`]); 0 if the conv cannot be packed.
fn float_pack_bytes(g: &Geom) -> usize {
    let Some((block, tile)) = float_pack_sizes(g) else {
        return 0;
    };
    let blocks = (FP_WEIGHT_BYTES / block.max(1))
        .min(FP_MAX_BLOCKS)
        .clamp(1, g.out_c.div_ceil(FP_NR).max(1));
    block.saturating_mul(blocks).saturating_add(tile)
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

/// What this engine's kernels want in scratch for `plan`, as
/// [`PlanBuilder`](crate::PlanBuilder) computes it when it writes a plan
/// (a multiple of 16): for tools that bring an older plan's header up to
/// date.
pub fn for_plan(plan: &crate::Plan) -> usize {
    let p = plan.precision();
    let need = |i: u32| -> usize {
        let Ok(op) = plan.op(i) else { return 0 };
        let (Ok(x), Ok(y), Ok(w)) = (
            plan.tensor(op.input),
            plan.tensor(op.output),
            plan.tensor(op.weights),
        ) else {
            return 0;
        };
        match op.kind {
            crate::OpKind::Conv2d => {
                let g = Geom::of_op(&op, &x.dims, &y.dims);
                if w.encoding == crate::format::Encoding::BitmapRows {
                    conv_sparse_i8(&g)
                } else {
                    conv(p, &g, w.rank == 3)
                }
            }
            crate::OpKind::Dense => {
                let n = |d: &crate::TensorDesc| d.elements().unwrap_or(0) as usize;
                dense(p, n(&x), n(&y))
            }
            _ => 0,
        }
    };
    let max = (0..plan.op_count() as u32).map(need).max().unwrap_or(0);
    round(max)
}

/// Rounds up to the header's 16-byte scratch unit.
pub fn round(bytes: usize) -> usize {
    bytes.div_ceil(crate::format::SCRATCH_UNIT) * crate::format::SCRATCH_UNIT
}

//! Kernels, one family per file. They work on byte slices (arena and plan
//! bytes), decode little-endian values on the fly and so accept any
//! alignment. Each kernel checks its buffer lengths against its geometry on
//! entry and returns [`ShapeError`] instead of indexing out of bounds.

pub mod add;
pub mod conv;
pub mod dense;
pub mod dot;
pub mod pool;
pub mod requant;
pub mod scratch;
pub mod softmax;
pub mod sparse;
pub mod transpose;

#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
mod dsp_arm;
#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
mod dsp_pairs;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod float_neon;
#[cfg(target_arch = "x86_64")]
mod float_x86;
#[cfg(target_arch = "x86_64")]
mod gemm_vnni;
#[cfg(target_arch = "x86_64")]
mod gemm_x86;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub(crate) mod neon;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon_dotprod;
#[cfg(target_arch = "x86_64")]
mod wino_x86;

use add::AddQuant;

/// Buffers do not match the geometry a kernel was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeError;

/// Which kernel implementations the executor may use.
///
/// Every path computes the same int8 bytes (integer sums are exact) and the
/// same float bits (the fast paths keep the reference summation order), so
/// this is for testing and benchmarking: run a plan both ways and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelPath {
    /// The fastest kernels this CPU supports: AVX-512 VNNI or else AVX2 on
    /// x86-64 (detected at run time with the `std` feature, else when
    /// compiled in), the DSP
    /// extension (SMLAD) on Arm builds with `target_feature = "dsp"`
    /// (Cortex-M4/M7/M33), NEON on aarch64 (with the dot-product extension,
    /// `SDOT`, where the CPU has it: detected at run time with the `std`
    /// feature, else when compiled in), portable code elsewhere. Kernels that need scratch use it when the plan
    /// provides enough (`scratch_bytes`) and fall back otherwise.
    #[default]
    Auto,
    /// [`KernelPath::Auto`] without the AVX-512 kernels: AVX2 on x86-64
    /// even where AVX-512 VNNI exists, to compare the two x86 fast paths;
    /// elsewhere the same as `Auto`.
    NoAvx512,
    /// The portable reference kernels only: no SIMD intrinsics, no scratch.
    Portable,
}

impl KernelPath {
    /// Whether this path uses SIMD kernels on this machine.
    pub fn uses_simd(self) -> bool {
        self != KernelPath::Portable && dot::simd_available()
    }

    /// Whether this path uses the AVX-512 VNNI kernels on this machine.
    pub fn uses_vnni(self) -> bool {
        self == KernelPath::Auto && dot::vnni_available()
    }

    /// Whether kernels may use the plan's scratch area.
    pub fn uses_scratch(self) -> bool {
        self != KernelPath::Portable
    }

    /// The SIMD extension this path's int8 kernels use on this machine:
    /// `"avx512-vnni"`, `"avx2"`, `"armv7e-m dsp"`, `"neon-dotprod"`,
    /// `"neon"` or `"none"`.
    pub fn simd_name(self) -> &'static str {
        if self.uses_vnni() {
            "avx512-vnni"
        } else if !self.uses_simd() {
            "none"
        } else if cfg!(target_arch = "x86_64") {
            "avx2"
        } else if cfg!(target_arch = "arm") {
            "armv7e-m dsp"
        } else if cfg!(target_arch = "aarch64") {
            if dot::dotprod_available() {
                "neon-dotprod"
            } else {
                "neon"
            }
        } else {
            "simd"
        }
    }
}

impl KernelPath {
    /// The SIMD extension this path's f32 and f16 kernels use on this
    /// machine: `"avx512"` (the packed conv; with [`KernelPath::Auto`] on a
    /// CPU with AVX-512 F, VL, DQ and VNNI), `"avx2"`, `"neon"` or `"none"`
    /// (scalar loops, as on the Cortex-M4F's single-precision FPU).
    pub fn float_simd_name(self) -> &'static str {
        if !self.uses_simd() {
            return "none";
        }
        #[cfg(target_arch = "x86_64")]
        {
            if self.uses_vnni() && float_x86::wide_available() {
                "avx512"
            } else {
                "avx2"
            }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            "neon"
        }
        #[cfg(not(any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_feature = "neon")
        )))]
        {
            "none"
        }
    }
}

/// What a kernel may use besides its operands: SIMD, and the plan's
/// scratch area (after the activation arena).
#[derive(Debug)]
pub struct Kx<'s> {
    /// SIMD kernels allowed (the CPU has them and the path is not
    /// `Portable`).
    pub simd: bool,
    /// AVX-512 VNNI kernels allowed (the CPU has them and the path is
    /// `Auto`); implies `simd`.
    pub vnni: bool,
    /// Whether the kernels may use `scratch` (false for `Portable`).
    pub use_scratch: bool,
    pub scratch: &'s mut [u8],
}

impl Kx<'_> {
    /// Portable kernels, no scratch.
    pub fn portable() -> Kx<'static> {
        Kx {
            simd: false,
            vnni: false,
            use_scratch: false,
            scratch: &mut [],
        }
    }

    /// Bytes of scratch kernels may use (0 for `Portable`).
    pub(crate) fn scratch_len(&self) -> usize {
        if self.use_scratch {
            self.scratch.len()
        } else {
            0
        }
    }

    /// The scratch area if kernels may use it and it holds `bytes`.
    pub(crate) fn scratch(&mut self, bytes: usize) -> Option<&mut [u8]> {
        if self.use_scratch {
            self.scratch.get_mut(..bytes)
        } else {
            None
        }
    }
}

/// A fused residual input of a Conv2d: a separate region of the arena, or
/// the output region itself (in place: each output element reads its own
/// residual element just before writing it).
#[derive(Debug, Clone, Copy)]
pub enum Residual<'r> {
    Separate(&'r [u8]),
    InPlace,
}

impl Residual<'_> {
    /// Checks a separate residual's length against the output's.
    fn check(&self, out_len: usize) -> KResult {
        match self {
            Residual::Separate(r) if r.len() != out_len => Err(ShapeError),
            _ => Ok(()),
        }
    }
}

/// A Conv2d's fused int8 Add: the residual and the Add's parameters
/// (`zp1` is the conv result's zero point, `zp2` the residual's).
#[derive(Debug, Clone, Copy)]
pub struct FuseI8<'r> {
    pub residual: Residual<'r>,
    pub add: AddQuant,
}

/// How an int8 conv/dense stores one output value: requantise, then
/// optionally the fused residual Add.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out8<'q, 'r> {
    pub q: &'q QuantParams<'q>,
    pub fuse: Option<FuseI8<'r>>,
}

impl Out8<'_, '_> {
    fn check(&self, out_len: usize) -> KResult {
        self.fuse.map_or(Ok(()), |f| f.residual.check(out_len))
    }

    /// Stores `out[i]` for accumulator `acc` of channel `ch`.
    #[inline(always)]
    pub fn store(&self, acc: i32, ch: usize, i: usize, out: &mut [u8]) {
        let v = self.q.requantize(acc, ch);
        if let Some(o) = out.get_mut(i) {
            *o = match &self.fuse {
                None => v,
                Some(f) => {
                    let r = match f.residual {
                        Residual::Separate(s) => s.get(i).copied().unwrap_or(0),
                        Residual::InPlace => *o,
                    };
                    f.add.add(v, r)
                }
            };
        }
    }
}

/// How a float conv/dense stores one output value: optionally add the
/// residual, then the activation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutF<'r> {
    pub act: FloatAct,
    pub residual: Option<Residual<'r>>,
}

impl OutF<'_> {
    fn check(&self, out_len: usize) -> KResult {
        self.residual.map_or(Ok(()), |r| r.check(out_len))
    }

    /// Stores f32 element `i` of `out` for accumulator `acc`.
    #[inline(always)]
    pub fn store(&self, acc: f32, i: usize, out: &mut [u8]) {
        let at = i.wrapping_mul(4);
        let v = match self.residual {
            None => acc,
            Some(Residual::Separate(s)) => acc + f32_at(s, i),
            Some(Residual::InPlace) => acc + out.get(at..).map_or(0.0, ld_f32),
        };
        if let Some(o) = out.get_mut(at..) {
            st_f32(o, self.act.apply(v));
        }
    }
}

pub type KResult = Result<(), ShapeError>;

/// A little-endian `i32` array inside plan or arena bytes.
#[derive(Debug, Clone, Copy)]
pub struct I32s<'a>(pub &'a [u8]);

impl I32s<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, or 0 past the end (kernels check lengths first).
    #[inline]
    pub fn get(&self, i: usize) -> i32 {
        crate::format::rd_i32(self.0, i.wrapping_mul(4)).unwrap_or(0)
    }
}

/// Per-tensor int8 requantisation context of a conv or dense op.
#[derive(Debug, Clone, Copy)]
pub struct QuantParams<'a> {
    pub in_zp: i32,
    pub out_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
    /// Per output channel Q31 multipliers.
    pub multipliers: I32s<'a>,
    /// Per output channel shifts (positive = left).
    pub shifts: I32s<'a>,
}

impl QuantParams<'_> {
    #[inline]
    pub(crate) fn requantize(&self, acc: i32, ch: usize) -> u8 {
        requant::requantize(
            acc,
            self.multipliers.get(ch),
            self.shifts.get(ch),
            self.out_zp,
            self.act_min,
            self.act_max,
        )
    }
}

/// Float weight element: f32 or IEEE half, both little-endian.
pub trait FloatWeight {
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` bytes.
    fn decode(b: &[u8]) -> f32;
}

/// f32 weights.
#[derive(Debug, Clone, Copy)]
pub struct F32W;
/// f16 weights, widened to f32 on use.
#[derive(Debug, Clone, Copy)]
pub struct F16W;

impl FloatWeight for F32W {
    const SIZE: usize = 4;
    #[inline]
    fn decode(b: &[u8]) -> f32 {
        ld_f32(b)
    }
}

impl FloatWeight for F16W {
    const SIZE: usize = 2;
    #[inline]
    fn decode(b: &[u8]) -> f32 {
        match b {
            [a, c] => f16_to_f32(u16::from_le_bytes([*a, *c])),
            _ => 0.0,
        }
    }
}

/// IEEE binary16 bits to f32, exactly (every half is an f32), with the same
/// bits as `half::f16::to_f32` (NaNs get the quiet bit). Branch-light, so
/// loops over weights vectorise.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    let bits = if em >= 0x7c00 {
        // Infinity, or NaN with the payload kept and the quiet bit set.
        let man = em & 0x3ff;
        0x7f80_0000 | (man << 13) | if man != 0 { 0x0040_0000 } else { 0 }
    } else if em >= 0x0400 {
        // Normal: rebias the exponent.
        (em << 13) + ((127 - 15) << 23)
    } else {
        // Zero or subnormal: em * 2^-24, exact in f32.
        (em as f32 * (1.0 / 16_777_216.0)).to_bits()
    };
    f32::from_bits(bits | sign)
}

/// Decodes an f32 from the first 4 bytes (0.0 if shorter).
#[inline]
pub fn ld_f32(b: &[u8]) -> f32 {
    match b {
        [a, c, d, e, ..] => f32::from_le_bytes([*a, *c, *d, *e]),
        _ => 0.0,
    }
}

/// Encodes `v` into the first 4 bytes of `b` (no-op if shorter).
#[inline]
pub fn st_f32(b: &mut [u8], v: f32) {
    if let Some(d) = b.get_mut(..4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// f32 element `i` of a byte buffer (0.0 past the end).
#[inline]
pub fn f32_at(b: &[u8], i: usize) -> f32 {
    b.get(i.wrapping_mul(4)..).map_or(0.0, ld_f32)
}

/// Output clamp of a float op: `None` is (-inf, inf), `Relu` (0, inf).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatAct {
    pub min: f32,
    pub max: f32,
}

impl FloatAct {
    pub const NONE: FloatAct = FloatAct {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };

    #[inline]
    pub fn apply(&self, v: f32) -> f32 {
        if v < self.min {
            self.min
        } else if v > self.max {
            self.max
        } else {
            v
        }
    }
}

/// Spatial geometry shared by conv and pooling (NHWC, N = 1).
///
/// Bottom/right padding is implied by `out_h`/`out_w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Geom {
    /// The geometry of a Conv2d or pool `op` from its input `x` and output
    /// `y` (NHWC; missing dims read as 0).
    pub fn of_op(op: &crate::format::OpDesc, x: &[u32; 4], y: &[u32; 4]) -> Geom {
        Geom {
            in_h: x[1] as usize,
            in_w: x[2] as usize,
            in_c: x[3] as usize,
            out_h: y[1] as usize,
            out_w: y[2] as usize,
            out_c: y[3] as usize,
            kernel_h: op.kernel_h as usize,
            kernel_w: op.kernel_w as usize,
            stride_h: op.stride_h as usize,
            stride_w: op.stride_w as usize,
            pad_top: op.pad_top as usize,
            pad_left: op.pad_left as usize,
        }
    }

    pub fn input_len(&self) -> Option<usize> {
        self.in_h.checked_mul(self.in_w)?.checked_mul(self.in_c)
    }

    pub fn output_len(&self) -> Option<usize> {
        self.out_h.checked_mul(self.out_w)?.checked_mul(self.out_c)
    }

    /// Rows of output row `oy` that fall inside the input.
    #[inline]
    pub fn rows(&self, oy: usize) -> Span {
        Span::new(oy, self.stride_h, self.pad_top, self.kernel_h, self.in_h)
    }

    /// Columns of output column `ox` that fall inside the input.
    #[inline]
    pub fn cols(&self, ox: usize) -> Span {
        Span::new(ox, self.stride_w, self.pad_left, self.kernel_w, self.in_w)
    }
}

/// The in-bounds part of one kernel window along one axis: kernel taps
/// `k0..k1` read input positions `i0..i0 + (k1 - k0)`. Padding taps are
/// skipped, which for int8 is the same as reading `x == zero_point`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub k0: usize,
    pub k1: usize,
    pub i0: usize,
}

impl Span {
    #[inline]
    fn new(o: usize, stride: usize, pad: usize, k: usize, n: usize) -> Self {
        // Tap t reads input position o*stride + t - pad.
        let start = o.saturating_mul(stride);
        let k0 = pad.saturating_sub(start).min(k);
        let k1 = pad.saturating_add(n).saturating_sub(start).min(k).max(k0);
        let i0 = start.saturating_add(k0).saturating_sub(pad);
        Span { k0, k1, i0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.k1.saturating_sub(self.k0)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.k1 <= self.k0
    }
}

/// Packs output pixel `p`'s im2col row for the GEMM kernels: its taps in
/// OHWI order, `value_bytes` bytes each, `pad` in every byte of a padding
/// tap, 0 past the last tap; each in-bounds run of input bytes goes through
/// `copy(src, dst)` (a widening, a sign flip, a plain copy). The kernels'
/// own pixel packers are this with their element conversion.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[inline(always)]
pub(crate) fn im2col_row(
    g: &Geom,
    x: &[u8],
    p: usize,
    value_bytes: usize,
    pad: u8,
    row: &mut [u8],
    mut copy: impl FnMut(&[u8], &mut [u8]),
) {
    let (oy, ox) = (p / g.out_w.max(1), p % g.out_w.max(1));
    let (rows, cols) = (g.rows(oy), g.cols(ox));
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let (taps, tail) = row.split_at_mut((k * value_bytes).min(row.len()));
    tail.fill(0);
    if rows.len() != g.kernel_h || cols.len() != g.kernel_w {
        // Only a window cut by the padding leaves taps unwritten below.
        taps.fill(pad);
    }
    let c = g.in_c;
    let span = cols.len() * c;
    for (r, ky) in (rows.k0..rows.k1).enumerate() {
        let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c;
        let ds = (ky * g.kernel_w + cols.k0) * c * value_bytes;
        let (Some(src), Some(dst)) = (
            x.get(xs..xs + span),
            taps.get_mut(ds..ds + span * value_bytes),
        ) else {
            return;
        };
        copy(src, dst);
    }
}

/// Calls `f` for blocks of up to `B` output pixels `(oy, ox)` whose
/// windows share their in-bounds kernel rows and columns, covering every
/// output pixel once. Passes the block, its length, and its first pixel's
/// row and column spans (for `k0..k1`). The vector float kernels' pixel
/// blocking, shared by x86 and NEON.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
pub(crate) fn for_each_block<const B: usize>(
    g: &Geom,
    mut f: impl FnMut(&[(usize, usize); B], usize, Span, Span) -> KResult,
) -> KResult {
    let rkey = |oy: usize| {
        let s = g.rows(oy);
        (s.k0, s.k1)
    };
    let ckey = |ox: usize| {
        let s = g.cols(ox);
        (s.k0, s.k1)
    };
    for ry in 0..g.out_h {
        // One class per distinct row key: its first row stands for it.
        if (0..ry).any(|y| rkey(y) == rkey(ry)) {
            continue;
        }
        for cx in 0..g.out_w {
            if (0..cx).any(|x| ckey(x) == ckey(cx)) {
                continue;
            }
            let (rows, cols) = (g.rows(ry), g.cols(cx));
            let mut blk = [(0, 0); B];
            let mut nb = 0;
            for oy in (ry..g.out_h).filter(|&y| rkey(y) == rkey(ry)) {
                for ox in (cx..g.out_w).filter(|&x| ckey(x) == ckey(cx)) {
                    blk[nb] = (oy, ox);
                    nb += 1;
                    if nb == B {
                        f(&blk, nb, rows, cols)?;
                        nb = 0;
                    }
                }
            }
            if nb > 0 {
                f(&blk, nb, rows, cols)?;
            }
        }
    }
    Ok(())
}

/// Asks for `bytes` to be brought into the (L2) cache, a line at a time,
/// ahead of their use: a hint with no effect on results (a no-op off
/// x86-64). For the vector kernels' loops.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing architecturally and cannot
        // fault; SSE is part of x86-64.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr() as *const i8
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Most output channels per chunk of the vector float convs (the running
/// sums of a pixel block live on the stack).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
pub(crate) const FLOAT_CM_MAX: usize = 96;

/// Running sums of a vector float conv's pixel block: a row of
/// [`FLOAT_CM_MAX`] channels per pixel.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
pub(crate) type FloatRun<const MR: usize> = [[f32; FLOAT_CM_MAX]; MR];

/// The loops of the vector float convs (x86 AVX2 and AVX-512, NEON) around
/// their micro-kernels: output channels `oc0..oc0 + m` (weights `w`, f32
/// OHWI, channel `oc0 + j` at `j * k`) in chunks of as many as
/// `chunk_bytes` of weights hold (a multiple of `NR`, at most
/// [`FLOAT_CM_MAX`]), pixel blocks of up to `MR` from [`for_each_block`];
/// for each kernel row, `micro(nb, nr, xp, wp, span, run, jb)` adds the
/// dot products of the first `nb` pixels' input spans `xp` and `NR`
/// channels' weight rows `wp` (`span` f32 each; past the chunk's last
/// channel the pointers repeat it) to `run[p][jb..jb + NR]`; then each
/// pixel's sums go to `store(sums, first output element, out)`.
///
/// For `micro` it guarantees: the first `nb` pointers of `xp` and all of
/// `wp` each start `span` readable f32, `nr <= NR` of them are distinct
/// channels, and `jb + NR <= FLOAT_CM_MAX`. Inlined into each target's
/// `#[target_feature]` function, so its closures are compiled for it.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn float_conv<const MR: usize, const NR: usize>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    (oc0, m): (usize, usize),
    bias_at: &impl Fn(usize) -> f32,
    chunk_bytes: usize,
    out: &mut [u8],
    mut micro: impl FnMut(
        usize,
        usize,
        &[*const f32; MR],
        &[*const f32; NR],
        usize,
        &mut FloatRun<MR>,
        usize,
    ) -> KResult,
    mut store: impl FnMut(&[f32], usize, &mut [u8]),
) -> KResult {
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let k = kh * kw * c;
    if w.len() < m * k * 4 || oc0 + m > n || NR == 0 || NR > FLOAT_CM_MAX {
        return Err(ShapeError);
    }
    let cm = ((chunk_bytes / (k * 4).max(1)) / NR * NR).clamp(NR, FLOAT_CM_MAX / NR * NR);
    let mut bias = [0.0f32; FLOAT_CM_MAX];
    let mut run: FloatRun<MR> = [[0.0; FLOAT_CM_MAX]; MR];
    for cb in (0..m).step_by(cm) {
        let cn = cm.min(m - cb);
        for (j, b) in bias.iter_mut().enumerate().take(cn) {
            *b = bias_at(oc0 + cb + j);
        }
        let wc = w.get(cb * k * 4..(cb + cn) * k * 4).ok_or(ShapeError)?;
        let wbase = wc.as_ptr() as *const f32;
        let oc = oc0 + cb;
        // The next chunk's weights, fetched a slice per pixel block while
        // this chunk computes (the micro-kernels read a chunk's rows two at
        // a time, which the hardware prefetcher follows poorly).
        let next = w
            .get(((cb + cn) * k * 4).min(w.len())..((cb + cn + cm) * k * 4).min(w.len()))
            .unwrap_or(&[]);
        let slice = next
            .len()
            .div_ceil(64)
            .div_ceil((g.out_h * g.out_w).div_ceil(MR).max(1))
            * 64;
        let mut ahead = next.chunks(slice.max(64));
        for_each_block::<MR>(g, |blk, nb, rows, cols| {
            prefetch(ahead.next().unwrap_or(&[]));
            let span = cols.len() * c;
            // Every weight row read below, `((j * kh + ky) * kw + cols.k0)
            // * c` plus `span`, ends inside channel j's `k`.
            if rows.k1 > kh || cols.k1 > kw || cn == 0 {
                return Err(ShapeError);
            }
            // Each pixel's sums start at the bias (only the block's pixels
            // and the chunk's channels are read).
            for r in run.iter_mut().take(nb) {
                r[..cn].copy_from_slice(&bias[..cn]);
            }
            for (r, ky) in (rows.k0..rows.k1).enumerate() {
                let mut xp = [core::ptr::null::<f32>(); MR];
                for (p, &(oy, ox)) in blk.iter().enumerate().take(nb) {
                    let (ry, cx) = (g.rows(oy), g.cols(ox));
                    let xs = ((ry.i0 + r) * g.in_w + cx.i0) * c * 4;
                    let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
                    xp[p] = xr.as_ptr() as *const f32;
                }
                let row0 = (ky * kw + cols.k0) * c;
                for jb in (0..cn).step_by(NR) {
                    let nr = NR.min(cn - jb);
                    let mut wp = [wbase; NR];
                    for (t, p) in wp.iter_mut().enumerate() {
                        // SAFETY: inside channel jb + min(t, nr - 1) < cn
                        // of `wc` (`wc` holds `cn * k` f32).
                        #[allow(unsafe_code)]
                        let at = unsafe { wbase.add((jb + t.min(nr - 1)) * k + row0) };
                        *p = at;
                    }
                    micro(nb, nr, &xp, &wp, span, &mut run, jb)?;
                }
            }
            for (p, &(oy, ox)) in blk.iter().enumerate().take(nb) {
                store(&run[p][..cn], (oy * g.out_w + ox) * n + oc, out);
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_half_for_every_value() {
        for b in 0..=u16::MAX {
            let want = half::f16::from_bits(b).to_f32().to_bits();
            assert_eq!(f16_to_f32(b).to_bits(), want, "{b:#06x}");
        }
    }

    #[test]
    fn span_clips_padding() {
        // 3-tap kernel, pad 1, input 5, stride 1.
        assert_eq!(
            Span::new(0, 1, 1, 3, 5),
            Span {
                k0: 1,
                k1: 3,
                i0: 0
            }
        );
        assert_eq!(
            Span::new(2, 1, 1, 3, 5),
            Span {
                k0: 0,
                k1: 3,
                i0: 1
            }
        );
        assert_eq!(
            Span::new(4, 1, 1, 3, 5),
            Span {
                k0: 0,
                k1: 2,
                i0: 3
            }
        );
        // Window entirely in padding is empty, not a panic.
        assert!(Span::new(0, 1, 7, 3, 5).is_empty());
        assert!(Span::new(9, 2, 0, 3, 5).is_empty());
    }
}

//! Plan file layout: constants, enums and fixed-size record encodings.
//!
//! Everything is little-endian and read with `from_le_bytes`, so a plan can be
//! parsed from any byte slice (flash, a file, a network buffer) whatever its
//! alignment. `docs/plan-format.md` is the normative description; the offsets
//! below must match it.

use crate::error::PlanError;

/// `b"EFPL"`: the first four bytes of every plan.
pub const MAGIC: [u8; 4] = *b"EFPL";
/// The newest format version this engine reads: version 2 adds tiled
/// segments ([`OpKind::Tiled`], [`Encoding::RowBuffer`]). The reference
/// writer writes version 1 unless a plan uses them, so devices with an
/// older engine keep reading every untiled plan.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this engine reads.
pub const MIN_FORMAT_VERSION: u16 = 1;
/// The first version with tiled segments.
pub const TILED_FORMAT_VERSION: u16 = 2;
/// Size of the version-1 header in bytes.
pub const HEADER_SIZE: usize = 64;
/// Size of one tensor-table record in bytes.
pub const TENSOR_RECORD_SIZE: usize = 40;
/// Size of one op-table record in bytes.
pub const OP_RECORD_SIZE: usize = 96;
/// The optional metadata trailer's magic (see [`crate::plan::metadata`]).
pub const METADATA_MAGIC: [u8; 4] = *b"EFMD";
/// Bytes of the trailer: the magic and the metadata's length.
pub const METADATA_TRAILER: usize = 8;
/// Alignment of the sections, of the weight blob and of every array inside it.
pub const SECTION_ALIGN: usize = 16;
/// Where the reference writer puts the weight blob and every array inside
/// it: on a cache line (a multiple of [`SECTION_ALIGN`], so any reader
/// accepts it). The vector kernels load weights 32 or 64 bytes at a time,
/// in place for f32; from a plan image on a cache line
/// ([`AlignedBytes`](crate::AlignedBytes)) those loads never straddle two
/// lines (on an Intel Xeon, AVX2, f32 ResNet-50 ran 2-4% slower with its
/// weights 16 bytes off, in two experiments).
pub const WEIGHT_ALIGN: usize = 64;
/// Granularity of the header's scratch size.
pub const SCRATCH_UNIT: usize = 16;
/// Largest scratch size the header can express: (2^24 - 1) units.
pub const MAX_SCRATCH_BYTES: u32 = 0xFF_FFFF * SCRATCH_UNIT as u32;
/// Highest tensor rank.
pub const MAX_RANK: usize = 4;
/// "No tensor" in optional tensor-index fields (second input, weights, bias).
pub const NONE: u32 = u32::MAX;

/// Reads a little-endian u16 at `at`; `None` if out of bounds.
pub(crate) fn rd_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian u32 at `at`; `None` if out of bounds.
pub(crate) fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn rd_i32(b: &[u8], at: usize) -> Option<i32> {
    rd_u32(b, at).map(|v| v as i32)
}

pub(crate) fn rd_f32(b: &[u8], at: usize) -> Option<f32> {
    rd_u32(b, at).map(f32::from_bits)
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DType {
    I8 = 0,
    I32 = 1,
    F16 = 2,
    F32 = 3,
}

impl DType {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::I8),
            1 => Some(Self::I32),
            2 => Some(Self::F16),
            3 => Some(Self::F32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::F16 => 2,
            Self::I32 | Self::F32 => 4,
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Location {
    /// In the caller's arena; the offset is an arena offset.
    Arena = 0,
    /// In the plan's weight blob; the offset is relative to the blob start.
    Weights = 1,
}

impl Location {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Arena),
            1 => Some(Self::Weights),
            _ => None,
        }
    }
}

/// How a weight tensor's bytes are laid out (tensor record byte 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Encoding {
    /// `product(dims)` elements, row-major.
    #[default]
    Dense = 0,
    /// int8 weights of a regular Conv2d or a Dense op, bitmap plus the
    /// non-zero values ([`crate::kernels::sparse::BitmapRows`]); `length` is
    /// the encoded size. Written when it is smaller than dense.
    BitmapRows = 1,
    /// An activation of a tiled segment held a band of rows at a time
    /// (format version 2): `dims` are the whole tensor's, `length` is the
    /// buffer's, a whole number of rows (`W·C·element` bytes each), at most
    /// the tensor's height. See [`crate::tiling`].
    RowBuffer = 2,
}

impl Encoding {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Dense),
            1 => Some(Self::BitmapRows),
            2 => Some(Self::RowBuffer),
            _ => None,
        }
    }
}

/// Numeric scheme of a whole plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Precision {
    /// int8 activations and weights, i32 bias, integer-only arithmetic.
    Int8 = 0,
    /// f16 weights (converted on use), f32 activations and bias.
    F16 = 1,
    /// f32 everywhere.
    F32 = 2,
}

impl Precision {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Int8),
            1 => Some(Self::F16),
            2 => Some(Self::F32),
            _ => None,
        }
    }

    /// dtype of activations (arena tensors).
    pub fn activation_dtype(self) -> DType {
        match self {
            Self::Int8 => DType::I8,
            Self::F16 | Self::F32 => DType::F32,
        }
    }

    /// dtype of conv/dense weight tensors.
    pub fn weight_dtype(self) -> DType {
        match self {
            Self::Int8 => DType::I8,
            Self::F16 => DType::F16,
            Self::F32 => DType::F32,
        }
    }

    /// dtype of conv/dense bias tensors.
    pub fn bias_dtype(self) -> DType {
        match self {
            Self::Int8 => DType::I32,
            Self::F16 | Self::F32 => DType::F32,
        }
    }
}

/// Operator kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    Conv2d = 0,
    Dense = 1,
    MaxPool = 2,
    AvgPool = 3,
    GlobalAvgPool = 4,
    Add = 5,
    Reshape = 6,
    Softmax = 7,
    /// A copy that permutes axes (the compiler's layout changes between the
    /// engine's NHWC feature maps and ONNX's row-major NCHW order, and ONNX
    /// Transpose): the input read as its dims padded to 4-D with leading 1s,
    /// output axis `i` taken from input axis [`OpDesc::transpose_perm`]`[i]`,
    /// written contiguously.
    Transpose = 8,
    /// A tiled segment (format version 2): the next [`OpDesc::segment_ops`]
    /// ops run in bands of rows, [`OpDesc::rows_per_step`] output rows of
    /// each op per kernel call, their intermediate tensors held in
    /// [`Encoding::RowBuffer`]s (see [`crate::tiling`]). `output` is the
    /// segment's last op's output.
    Tiled = 9,
}

impl OpKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Conv2d),
            1 => Some(Self::Dense),
            2 => Some(Self::MaxPool),
            3 => Some(Self::AvgPool),
            4 => Some(Self::GlobalAvgPool),
            5 => Some(Self::Add),
            6 => Some(Self::Reshape),
            7 => Some(Self::Softmax),
            8 => Some(Self::Transpose),
            9 => Some(Self::Tiled),
            _ => None,
        }
    }
}

/// Activation fused into an op's output.
///
/// Float plans apply it literally (`Clip` uses `clip_min`/`clip_max`). Int8
/// plans always clamp to `act_min..=act_max`, which the host has already set
/// from the activation, so there the code is informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activation {
    None = 0,
    Relu = 1,
    Clip = 2,
}

impl Activation {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::Relu),
            2 => Some(Self::Clip),
            _ => None,
        }
    }
}

/// Decoded plan header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u16,
    pub header_size: u32,
    pub total_size: u32,
    pub crc32: u32,
    pub arena_size: u32,
    pub plan_id: u32,
    pub precision: u8,
    /// Bytes of kernel scratch the executor needs after the activation
    /// arena (a multiple of 16; stored in bytes 29..32 as a 24-bit count of
    /// 16-byte units). 0 = none: every kernel then runs its portable
    /// scratch-free path.
    pub scratch_bytes: u32,
    pub tensor_count: u32,
    pub tensor_table_offset: u32,
    pub op_count: u32,
    pub op_table_offset: u32,
    pub weights_offset: u32,
    pub weights_size: u32,
    pub input: u32,
    pub output: u32,
}

// Header field offsets.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 4;
const H_FLAGS: usize = 6;
const H_HEADER_SIZE: usize = 8;
const H_TOTAL_SIZE: usize = 12;
const H_CRC: usize = 16;
const H_ARENA: usize = 20;
const H_PLAN_ID: usize = 24;
const H_PRECISION: usize = 28;
/// 29..32: scratch size, u24 little-endian, in units of [`SCRATCH_UNIT`].
const H_SCRATCH: usize = 29;
const H_TENSOR_COUNT: usize = 32;
const H_TENSOR_OFF: usize = 36;
const H_OP_COUNT: usize = 40;
const H_OP_OFF: usize = 44;
const H_WEIGHTS_OFF: usize = 48;
const H_WEIGHTS_SIZE: usize = 52;
const H_INPUT: usize = 56;
const H_OUTPUT: usize = 60;

impl Header {
    /// Decodes the header. Checks magic and version first so that a foreign
    /// or newer file gets the most useful error; everything else is checked
    /// by [`crate::Plan::parse`].
    pub fn decode(b: &[u8]) -> Result<Self, PlanError> {
        let truncated = PlanError::Truncated {
            needed: HEADER_SIZE,
            available: b.len(),
        };
        let magic = b.get(H_MAGIC..H_MAGIC + 4).ok_or(truncated.clone())?;
        if magic != MAGIC {
            return Err(PlanError::BadMagic {
                found: [magic[0], magic[1], magic[2], magic[3]],
            });
        }
        let version = rd_u16(b, H_VERSION).ok_or(truncated.clone())?;
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(PlanError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let h = b.get(..HEADER_SIZE).ok_or(truncated)?;
        let u = |at| rd_u32(h, at).unwrap_or(0);
        let scratch_units =
            u32::from_le_bytes([h[H_SCRATCH], h[H_SCRATCH + 1], h[H_SCRATCH + 2], 0]);
        Ok(Self {
            version,
            flags: rd_u16(h, H_FLAGS).unwrap_or(0),
            header_size: u(H_HEADER_SIZE),
            total_size: u(H_TOTAL_SIZE),
            crc32: u(H_CRC),
            arena_size: u(H_ARENA),
            plan_id: u(H_PLAN_ID),
            precision: h[H_PRECISION],
            scratch_bytes: scratch_units * SCRATCH_UNIT as u32,
            tensor_count: u(H_TENSOR_COUNT),
            tensor_table_offset: u(H_TENSOR_OFF),
            op_count: u(H_OP_COUNT),
            op_table_offset: u(H_OP_OFF),
            weights_offset: u(H_WEIGHTS_OFF),
            weights_size: u(H_WEIGHTS_SIZE),
            input: u(H_INPUT),
            output: u(H_OUTPUT),
        })
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[H_MAGIC..H_MAGIC + 4].copy_from_slice(&MAGIC);
        h[H_VERSION..H_VERSION + 2].copy_from_slice(&self.version.to_le_bytes());
        h[H_FLAGS..H_FLAGS + 2].copy_from_slice(&self.flags.to_le_bytes());
        let mut put = |at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(H_HEADER_SIZE, self.header_size);
        put(H_TOTAL_SIZE, self.total_size);
        put(H_CRC, self.crc32);
        put(H_ARENA, self.arena_size);
        put(H_PLAN_ID, self.plan_id);
        put(H_TENSOR_COUNT, self.tensor_count);
        put(H_TENSOR_OFF, self.tensor_table_offset);
        put(H_OP_COUNT, self.op_count);
        put(H_OP_OFF, self.op_table_offset);
        put(H_WEIGHTS_OFF, self.weights_offset);
        put(H_WEIGHTS_SIZE, self.weights_size);
        put(H_INPUT, self.input);
        put(H_OUTPUT, self.output);
        h[H_PRECISION] = self.precision;
        // Rounded up to whole units; saturates at MAX_SCRATCH_BYTES (the
        // writer refuses larger values before it gets here).
        let units = self
            .scratch_bytes
            .div_ceil(SCRATCH_UNIT as u32)
            .min(MAX_SCRATCH_BYTES / SCRATCH_UNIT as u32);
        h[H_SCRATCH..H_SCRATCH + 3].copy_from_slice(&units.to_le_bytes()[..3]);
        h
    }

    /// Byte offset of the CRC field, for tools that patch plans.
    pub const CRC_OFFSET: usize = H_CRC;
}

/// Quantisation parameters of a tensor.
///
/// `scale` is informational (the host uses it to quantise inputs and
/// dequantise outputs); integer kernels never read it. `zero_point` is used by
/// the int8 kernels and must be 0 for weights and for float tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quant {
    pub scale: f32,
    pub zero_point: i32,
}

impl Quant {
    /// scale 1, zero point 0: what float tensors and int8 weights carry.
    pub const NONE: Quant = Quant {
        scale: 1.0,
        zero_point: 0,
    };

    pub fn new(scale: f32, zero_point: i32) -> Self {
        Self { scale, zero_point }
    }
}

/// One tensor-table record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorDesc {
    pub dtype: DType,
    /// 1..=4 dims are used; the rest are stored as 0.
    pub rank: u8,
    /// Activations: NHWC with N = 1.
    pub dims: [u32; MAX_RANK],
    pub location: Location,
    /// Dense, or a compressed weight layout.
    pub encoding: Encoding,
    /// Arena offset, or offset inside the weight blob.
    pub offset: u32,
    /// Byte length; equals product(dims) * dtype size when dense.
    pub length: u32,
    pub quant: Quant,
}

impl TensorDesc {
    /// The used dims.
    pub fn shape(&self) -> &[u32] {
        self.dims.get(..self.rank as usize).unwrap_or(&[])
    }

    /// product(dims); `None` on overflow.
    pub fn elements(&self) -> Option<u64> {
        self.shape()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Byte range of the tensor inside its region (arena or blob).
    pub fn range(&self) -> core::ops::Range<usize> {
        let start = self.offset as usize;
        start..start.saturating_add(self.length as usize)
    }

    /// Decodes record `index`. Enum fields are checked here; everything that
    /// depends on other records is checked by [`crate::Plan::parse`].
    pub fn decode(r: &[u8], index: u32) -> Result<Self, PlanError> {
        let r = r.get(..TENSOR_RECORD_SIZE).ok_or(PlanError::Truncated {
            needed: TENSOR_RECORD_SIZE,
            available: r.len(),
        })?;
        let dtype = DType::from_u8(r[0]).ok_or(PlanError::BadEnum {
            what: "tensor dtype",
            index,
            value: r[0],
        })?;
        let location = Location::from_u8(r[2]).ok_or(PlanError::BadEnum {
            what: "tensor location",
            index,
            value: r[2],
        })?;
        let encoding = Encoding::from_u8(r[3]).ok_or(PlanError::BadEnum {
            what: "tensor encoding",
            index,
            value: r[3],
        })?;
        if r[36..40] != [0; 4] {
            return Err(PlanError::ReservedNotZero {
                record: "tensor",
                index,
            });
        }
        let u = |at| rd_u32(r, at).unwrap_or(0);
        Ok(Self {
            dtype,
            rank: r[1],
            dims: [u(4), u(8), u(12), u(16)],
            location,
            encoding,
            offset: u(20),
            length: u(24),
            quant: Quant {
                scale: rd_f32(r, 28).unwrap_or(0.0),
                zero_point: rd_i32(r, 32).unwrap_or(0),
            },
        })
    }

    pub fn encode(&self) -> [u8; TENSOR_RECORD_SIZE] {
        let mut r = [0u8; TENSOR_RECORD_SIZE];
        r[0] = self.dtype as u8;
        r[1] = self.rank;
        r[2] = self.location as u8;
        r[3] = self.encoding as u8;
        let mut put = |at: usize, v: u32| r[at..at + 4].copy_from_slice(&v.to_le_bytes());
        for (i, d) in self.dims.iter().enumerate() {
            put(4 + 4 * i, *d);
        }
        put(20, self.offset);
        put(24, self.length);
        put(28, self.quant.scale.to_bits());
        put(32, self.quant.zero_point as u32);
        r
    }
}

/// Fixed-point parameters of an int8 Add (TFLite's scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddParams {
    pub input1_multiplier: i32,
    pub input1_shift: i32,
    pub input2_multiplier: i32,
    pub input2_shift: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    /// Usually 20 for int8.
    pub left_shift: i32,
}

/// One op-table record. Fields an op kind does not use are ignored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpDesc {
    pub kind: OpKind,
    pub activation: Activation,
    pub input: u32,
    /// Add: the second input. Otherwise [`NONE`].
    pub input2: u32,
    pub output: u32,
    /// Conv2d/Dense: weight tensor.
    pub weights: u32,
    /// Conv2d/Dense: bias tensor or [`NONE`].
    pub bias: u32,
    pub kernel_h: u16,
    pub kernel_w: u16,
    pub stride_h: u16,
    pub stride_w: u16,
    pub pad_top: u16,
    pub pad_left: u16,
    pub pad_bottom: u16,
    pub pad_right: u16,
    /// Conv2d: 1 = regular, == channels = depthwise.
    pub groups: u32,
    /// int8: output clamp in quantised units, within -128..=127.
    pub act_min: i32,
    pub act_max: i32,
    /// Float plans, `Activation::Clip`: clamp range.
    pub clip_min: f32,
    pub clip_max: f32,
    /// int8 Conv2d/Dense: blob offset of `i32[out_channels]` Q31 multipliers.
    pub multipliers: u32,
    /// int8 Conv2d/Dense: blob offset of `i32[out_channels]` shifts
    /// (positive = left).
    pub shifts: u32,
    /// int8 Add, and int8 Conv2d with a residual (the fused Add).
    pub add: AddParams,
    /// Conv2d only: a residual tensor (same shape as the output) added to
    /// the convolution, `out = act(add(conv(x), residual))`, or [`NONE`].
    /// Stored in the record's `input2` slot. The output may be exactly the
    /// residual's region (in place).
    pub residual: u32,
    /// int8 Conv2d with a residual: quantisation of the convolution result
    /// before the fused Add (the tensor an unfused Conv2d would have
    /// written). The zero point is used; the scale is informational.
    pub conv_out: Quant,
    /// int8 Conv2d with a residual: clamp of the convolution result
    /// (quantised units, -128..=127), as an unfused Conv2d's `act_min`/
    /// `act_max`. `act_min`/`act_max` are then the fused Add's clamp.
    pub conv_act_min: i32,
    pub conv_act_max: i32,
}

impl OpDesc {
    /// An op with neutral parameters: 1x1 kernel, stride 1, no padding,
    /// groups 1, no activation, int8 clamp -128..=127, no weights or bias.
    pub fn new(kind: OpKind, input: u32, output: u32) -> Self {
        Self {
            kind,
            activation: Activation::None,
            input,
            input2: NONE,
            output,
            weights: NONE,
            bias: NONE,
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            groups: 1,
            act_min: -128,
            act_max: 127,
            clip_min: 0.0,
            clip_max: 0.0,
            multipliers: NONE,
            shifts: NONE,
            add: AddParams::default(),
            residual: NONE,
            conv_out: Quant::NONE,
            conv_act_min: -128,
            conv_act_max: 127,
        }
    }

    /// A Transpose copying `input` into `output` with output axis `i` read
    /// from input axis `perm[i]` (the input's dims padded to 4-D with leading 1s).
    pub fn transpose(input: u32, output: u32, perm: [u8; 4]) -> Self {
        let mut op = Self::new(OpKind::Transpose, input, output);
        op.groups = u32::from_le_bytes(perm);
        op
    }

    /// Transpose: the axis permutation held in `groups` (byte `i` = the input
    /// axis of output axis `i`), or `None` when those bytes are not a
    /// permutation of 0..4.
    pub fn transpose_perm(&self) -> Option<[usize; 4]> {
        let b = self.groups.to_le_bytes();
        let perm = [b[0] as usize, b[1] as usize, b[2] as usize, b[3] as usize];
        let mut seen = [false; 4];
        for &p in &perm {
            if p >= 4 || seen[p] {
                return None;
            }
            seen[p] = true;
        }
        Some(perm)
    }

    /// Whether this is a Conv2d with a fused residual Add.
    pub fn has_residual(&self) -> bool {
        self.kind == OpKind::Conv2d && self.residual != NONE
    }

    /// A [`OpKind::Tiled`] op: how many of the ops after it form the
    /// segment (stored in the `weights` slot).
    pub fn segment_ops(&self) -> u32 {
        self.weights
    }

    /// A [`OpKind::Tiled`] op: output rows each op of the segment computes
    /// per kernel call (stored in the `kernel_h` slot).
    pub fn rows_per_step(&self) -> u16 {
        self.kernel_h
    }

    /// A [`OpKind::Tiled`] op over the `ops` ops that follow it, ending with
    /// the one writing `output`, stepping `rows_per_step` rows.
    pub fn tiled(ops: u32, rows_per_step: u16, output: u32) -> Self {
        let mut op = Self::new(OpKind::Tiled, NONE, output);
        op.weights = ops;
        op.kernel_h = rows_per_step;
        op
    }

    /// Whether the record stores `conv_out` in bytes 52..60 instead of the
    /// float clip range: a Conv2d with a residual whose activation is not
    /// `Clip` (int8 plans reject `Clip` on such an op; float plans need
    /// `conv_out` not at all).
    fn stores_conv_out(&self) -> bool {
        self.has_residual() && self.activation != Activation::Clip
    }

    pub fn decode(r: &[u8], index: u32) -> Result<Self, PlanError> {
        let r = r.get(..OP_RECORD_SIZE).ok_or(PlanError::Truncated {
            needed: OP_RECORD_SIZE,
            available: r.len(),
        })?;
        let kind = OpKind::from_u8(r[0]).ok_or(PlanError::BadEnum {
            what: "op kind",
            index,
            value: r[0],
        })?;
        let activation = Activation::from_u8(r[1]).ok_or(PlanError::BadEnum {
            what: "op activation",
            index,
            value: r[1],
        })?;
        let u = |at| rd_u32(r, at).unwrap_or(0);
        let h = |at| rd_u16(r, at).unwrap_or(0);
        let i = |at| rd_i32(r, at).unwrap_or(0);
        // Bytes 8..12: Add's second input, or a Conv2d's residual.
        let (input2, residual) = if kind == OpKind::Conv2d {
            (NONE, u(8))
        } else {
            (u(8), NONE)
        };
        let fused = kind == OpKind::Conv2d && residual != NONE;
        // Bytes 2..4: a fused conv's intermediate clamp, else reserved.
        let (conv_act_min, conv_act_max) = if fused {
            (r[2] as i8 as i32, r[3] as i8 as i32)
        } else if r[2..4] != [0, 0] {
            return Err(PlanError::ReservedNotZero {
                record: "op",
                index,
            });
        } else {
            (-128, 127)
        };
        let f = |at| rd_f32(r, at).unwrap_or(0.0);
        // Bytes 52..60: the float clip range, or a fused conv's conv_out.
        let (clip_min, clip_max, conv_out) = if fused && activation != Activation::Clip {
            (0.0, 0.0, Quant::new(f(52), i(56)))
        } else {
            (f(52), f(56), Quant::NONE)
        };
        Ok(Self {
            kind,
            activation,
            input: u(4),
            input2,
            output: u(12),
            weights: u(16),
            bias: u(20),
            kernel_h: h(24),
            kernel_w: h(26),
            stride_h: h(28),
            stride_w: h(30),
            pad_top: h(32),
            pad_left: h(34),
            pad_bottom: h(36),
            pad_right: h(38),
            groups: u(40),
            act_min: i(44),
            act_max: i(48),
            clip_min,
            clip_max,
            multipliers: u(60),
            shifts: u(64),
            add: AddParams {
                input1_multiplier: i(68),
                input1_shift: i(72),
                input2_multiplier: i(76),
                input2_shift: i(80),
                output_multiplier: i(84),
                output_shift: i(88),
                left_shift: i(92),
            },
            residual,
            conv_out,
            conv_act_min,
            conv_act_max,
        })
    }

    pub fn encode(&self) -> [u8; OP_RECORD_SIZE] {
        let mut r = [0u8; OP_RECORD_SIZE];
        r[0] = self.kind as u8;
        r[1] = self.activation as u8;
        let mut put = |at: usize, b: &[u8]| r[at..at + b.len()].copy_from_slice(b);
        put(4, &self.input.to_le_bytes());
        let slot8 = if self.kind == OpKind::Conv2d {
            self.residual
        } else {
            self.input2
        };
        put(8, &slot8.to_le_bytes());
        if self.has_residual() {
            let sat = |v: i32| v.clamp(-128, 127) as i8 as u8;
            put(2, &[sat(self.conv_act_min), sat(self.conv_act_max)]);
        }
        put(12, &self.output.to_le_bytes());
        put(16, &self.weights.to_le_bytes());
        put(20, &self.bias.to_le_bytes());
        let halves = [
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.pad_top,
            self.pad_left,
            self.pad_bottom,
            self.pad_right,
        ];
        for (k, v) in halves.iter().enumerate() {
            put(24 + 2 * k, &v.to_le_bytes());
        }
        put(40, &self.groups.to_le_bytes());
        put(44, &self.act_min.to_le_bytes());
        put(48, &self.act_max.to_le_bytes());
        if self.stores_conv_out() {
            put(52, &self.conv_out.scale.to_le_bytes());
            put(56, &self.conv_out.zero_point.to_le_bytes());
        } else {
            put(52, &self.clip_min.to_le_bytes());
            put(56, &self.clip_max.to_le_bytes());
        }
        put(60, &self.multipliers.to_le_bytes());
        put(64, &self.shifts.to_le_bytes());
        let a = &self.add;
        let ints = [
            a.input1_multiplier,
            a.input1_shift,
            a.input2_multiplier,
            a.input2_shift,
            a.output_multiplier,
            a.output_shift,
            a.left_shift,
        ];
        for (k, v) in ints.iter().enumerate() {
            put(68 + 4 * k, &v.to_le_bytes());
        }
        r
    }
}

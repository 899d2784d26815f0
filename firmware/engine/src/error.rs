//! Error types. Every variant names the numbers involved so that a one-line
//! report from a device is enough to find the problem.

use core::fmt;

/// Why a plan was rejected by [`crate::Plan::parse`].
///
/// `op` and `tensor` fields are indices into the op and tensor tables.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    /// The byte slice is shorter than the plan says (or than a header).
    Truncated {
        needed: usize,
        available: usize,
    },
    BadMagic {
        found: [u8; 4],
    },
    UnsupportedVersion {
        found: u16,
        supported: u16,
    },
    /// Flags that version 1 does not define were set.
    UnknownFlags {
        flags: u16,
    },
    BadHeaderSize {
        found: u32,
        expected: u32,
    },
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// A reserved byte of a record was not zero.
    ReservedNotZero {
        record: &'static str,
        index: u32,
    },
    /// An enum field held an unknown value (`index` is the record index).
    BadEnum {
        what: &'static str,
        index: u32,
        value: u8,
    },
    /// A section (tensor table, op table, weight blob) is misplaced.
    BadSection {
        section: &'static str,
        offset: u32,
        size: u64,
        reason: &'static str,
    },
    BadRank {
        tensor: u32,
        rank: u8,
    },
    /// A used dim is 0, or an unused dim is not 0.
    BadDims {
        tensor: u32,
        dim: u32,
        value: u32,
    },
    TensorLengthMismatch {
        tensor: u32,
        length: u32,
        expected: u64,
    },
    TensorOutOfBounds {
        tensor: u32,
        end: u64,
        limit: u64,
    },
    TensorMisaligned {
        tensor: u32,
        offset: u32,
    },
    BadZeroPoint {
        tensor: u32,
        zero_point: i32,
    },
    /// A tensor index (header input/output or an op field) is out of range.
    TensorIndex {
        op: Option<u32>,
        index: u32,
        count: u32,
    },
    /// A tensor has the wrong dtype for its role.
    WrongDType {
        op: Option<u32>,
        tensor: u32,
        found: crate::DType,
        expected: crate::DType,
    },
    /// A tensor is in the weight blob where the arena is required, or the
    /// other way round.
    WrongLocation {
        op: Option<u32>,
        tensor: u32,
    },
    /// A shape does not agree with the op.
    Shape {
        op: u32,
        what: &'static str,
        found: u64,
        expected: u64,
    },
    /// Two tensors of an op must have the same shape and do not.
    ShapeMismatch {
        op: u32,
        a: u32,
        b: u32,
    },
    /// An op parameter is out of its range.
    BadParam {
        op: u32,
        what: &'static str,
        value: i64,
    },
    /// A per-channel multiplier or shift array leaves the weight blob or is
    /// misaligned.
    BadArray {
        op: u32,
        what: &'static str,
        offset: u32,
        length: u64,
        blob: u32,
    },
    /// An op's output overlaps one of its inputs where that is not allowed.
    Overlap {
        op: u32,
        input: u32,
        output: u32,
    },
    /// The op is valid but this engine does not implement that combination.
    Unsupported {
        op: u32,
        what: &'static str,
    },
    /// A sparse (`BitmapRows`) weight tensor is malformed or used where
    /// only dense tensors are allowed.
    BadSparse {
        tensor: u32,
        reason: &'static str,
    },
    /// An f16 or f32 weight (or bias) tensor holds a NaN or an infinity:
    /// its results would depend on the kernel path (NaN bit patterns).
    NonFiniteWeight {
        tensor: u32,
        element: u64,
    },
    /// A [`crate::Encoding::RowBuffer`] tensor is malformed or used outside
    /// the tiled segment that computes it.
    BadRowBuffer {
        tensor: u32,
        reason: &'static str,
    },
    /// A tiled segment ([`crate::OpKind::Tiled`] at op `op`) cannot run as
    /// written; `row` is the output row of the segment's op `at` where its
    /// schedule failed (0 when the shape itself is wrong).
    BadSegment {
        op: u32,
        at: u32,
        row: u32,
        reason: &'static str,
    },
}

impl PlanError {
    /// A number for the error (1 + the variant's position), the `detail` of
    /// a device's `BadPlan` answer on every target.
    pub const fn code(&self) -> u32 {
        match self {
            Self::Truncated { .. } => 1,
            Self::BadMagic { .. } => 2,
            Self::UnsupportedVersion { .. } => 3,
            Self::UnknownFlags { .. } => 4,
            Self::BadHeaderSize { .. } => 5,
            Self::CrcMismatch { .. } => 6,
            Self::ReservedNotZero { .. } => 7,
            Self::BadEnum { .. } => 8,
            Self::BadSection { .. } => 9,
            Self::BadRank { .. } => 10,
            Self::BadDims { .. } => 11,
            Self::TensorLengthMismatch { .. } => 12,
            Self::TensorOutOfBounds { .. } => 13,
            Self::TensorMisaligned { .. } => 14,
            Self::BadZeroPoint { .. } => 15,
            Self::TensorIndex { .. } => 16,
            Self::WrongDType { .. } => 17,
            Self::WrongLocation { .. } => 18,
            Self::Shape { .. } => 19,
            Self::ShapeMismatch { .. } => 20,
            Self::BadParam { .. } => 21,
            Self::BadArray { .. } => 22,
            Self::Overlap { .. } => 23,
            Self::Unsupported { .. } => 24,
            Self::BadSparse { .. } => 25,
            Self::NonFiniteWeight { .. } => 26,
            Self::BadRowBuffer { .. } => 27,
            Self::BadSegment { .. } => 28,
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PlanError::*;
        match self {
            Truncated { needed, available } => write!(
                f,
                "plan truncated: needs {needed} bytes, {available} available"
            ),
            BadMagic { found } => write!(
                f,
                "bad magic {:02x} {:02x} {:02x} {:02x} (expected \"EFPL\")",
                found[0], found[1], found[2], found[3]
            ),
            UnsupportedVersion { found, supported } => write!(
                f,
                "plan format version {found} is not supported (this engine reads versions 1 to {supported})"
            ),
            UnknownFlags { flags } => write!(f, "unknown header flags {flags:#06x}"),
            BadHeaderSize { found, expected } => {
                write!(f, "header size {found}, expected {expected}")
            }
            CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            ReservedNotZero { record, index } => {
                write!(f, "{record} record {index}: reserved bytes are not zero")
            }
            BadEnum { what, index, value } => {
                write!(f, "record {index}: invalid {what} {value}")
            }
            BadSection {
                section,
                offset,
                size,
                reason,
            } => write!(
                f,
                "{section} at offset {offset} ({size} bytes): {reason}"
            ),
            BadRank { tensor, rank } => {
                write!(f, "tensor {tensor}: rank {rank} not in 1..=4")
            }
            BadDims { tensor, dim, value } => {
                write!(f, "tensor {tensor}: dim {dim} is {value}")
            }
            TensorLengthMismatch {
                tensor,
                length,
                expected,
            } => write!(
                f,
                "tensor {tensor}: byte length {length}, dims and dtype give {expected}"
            ),
            TensorOutOfBounds { tensor, end, limit } => write!(
                f,
                "tensor {tensor}: ends at byte {end}, beyond its region of {limit} bytes"
            ),
            TensorMisaligned { tensor, offset } => write!(
                f,
                "tensor {tensor}: weight offset {offset} is not 16-byte aligned"
            ),
            BadZeroPoint { tensor, zero_point } => {
                write!(f, "tensor {tensor}: zero point {zero_point} out of range")
            }
            TensorIndex { op, index, count } => match op {
                Some(op) => write!(
                    f,
                    "op {op}: tensor index {index} out of range ({count} tensors)"
                ),
                None => write!(
                    f,
                    "header: tensor index {index} out of range ({count} tensors)"
                ),
            },
            WrongDType {
                op,
                tensor,
                found,
                expected,
            } => {
                if let Some(op) = op {
                    write!(f, "op {op}: ")?;
                }
                write!(f, "tensor {tensor} has dtype {found:?}, expected {expected:?}")
            }
            WrongLocation { op, tensor } => {
                if let Some(op) = op {
                    write!(f, "op {op}: ")?;
                }
                write!(f, "tensor {tensor} is in the wrong region (arena/weights)")
            }
            Shape {
                op,
                what,
                found,
                expected,
            } => write!(f, "op {op}: {what} is {found}, expected {expected}"),
            ShapeMismatch { op, a, b } => write!(
                f,
                "op {op}: tensors {a} and {b} must have the same shape"
            ),
            BadParam { op, what, value } => write!(f, "op {op}: invalid {what} {value}"),
            BadArray {
                op,
                what,
                offset,
                length,
                blob,
            } => write!(
                f,
                "op {op}: {what} array at blob offset {offset} ({length} bytes) is misaligned or outside the {blob}-byte weight blob"
            ),
            Overlap { op, input, output } => write!(
                f,
                "op {op}: output tensor {output} overlaps input tensor {input} in the arena"
            ),
            Unsupported { op, what } => write!(f, "op {op}: unsupported {what}"),
            BadSparse { tensor, reason } => {
                write!(f, "tensor {tensor}: bad sparse weights: {reason}")
            }
            NonFiniteWeight { tensor, element } => write!(
                f,
                "tensor {tensor}: element {element} is NaN or infinite (float weights and biases \
                 must be finite)"
            ),
            BadRowBuffer { tensor, reason } => {
                write!(f, "tensor {tensor}: bad row buffer: {reason}")
            }
            BadSegment {
                op,
                at,
                row,
                reason,
            } => write!(
                f,
                "tiled segment at op {op}: {reason} (its op {at}, output row {row})"
            ),
        }
    }
}

/// Why running a plan failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The arena passed in is smaller than the plan's arena size.
    ArenaTooSmall { needed: usize, provided: usize },
    /// An op index past the end of the op table.
    NoSuchOp { op: usize, count: usize },
    /// A kernel found buffers that do not match its shape. Cannot happen for a
    /// plan that passed [`crate::Plan::parse`]; reported instead of panicking.
    Internal { op: usize },
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::ArenaTooSmall { needed, provided } => write!(
                f,
                "arena too small: plan needs {needed} bytes, {provided} provided"
            ),
            ExecError::NoSuchOp { op, count } => {
                write!(f, "op {op} does not exist (plan has {count} ops)")
            }
            ExecError::Internal { op } => {
                write!(f, "op {op}: buffers do not match the op (internal error)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PlanError {}

#[cfg(feature = "std")]
impl std::error::Error for ExecError {}

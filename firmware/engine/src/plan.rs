//! Zero-copy plan reader. [`Plan::parse`] validates the whole plan before
//! returning it, so the executor can trust every offset, length and shape.

use crate::error::PlanError;
use crate::format::{
    DType, Encoding, Header, Location, OpDesc, Precision, TensorDesc, HEADER_SIZE, MAX_RANK,
    METADATA_MAGIC, METADATA_TRAILER, OP_RECORD_SIZE, SECTION_ALIGN, TENSOR_RECORD_SIZE,
};
use crate::kernels::sparse::{BadSparse, BitmapRows};
use crate::kernels::I32s;

mod ops;
pub(crate) mod segment;

pub use segment::TiledSegment;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (ISO-HDLC, as zlib and PNG use) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// A validated plan borrowing its bytes (from flash, a file or a buffer).
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    header: Header,
    precision: Precision,
    tensors: &'a [u8],
    ops: &'a [u8],
    weights: &'a [u8],
    /// The metadata trailer's contents, if the plan has one.
    metadata: Option<&'a [u8]>,
}

/// One section's placement, for bounds and overlap checks.
struct Section {
    name: &'static str,
    offset: u32,
    size: u64,
}

impl<'a> Plan<'a> {
    /// Parses and fully validates a plan. `bytes` may be longer than the plan
    /// (e.g. a flash slot); bytes past `total_size` are ignored. No alignment
    /// is required.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PlanError> {
        let h = Header::decode(bytes)?;
        if h.header_size as usize != HEADER_SIZE {
            return Err(PlanError::BadHeaderSize {
                found: h.header_size,
                expected: HEADER_SIZE as u32,
            });
        }
        if h.flags != 0 {
            return Err(PlanError::UnknownFlags { flags: h.flags });
        }
        let total = h.total_size as usize;
        if total < HEADER_SIZE {
            return Err(PlanError::BadSection {
                section: "plan",
                offset: 0,
                size: total as u64,
                reason: "total size is smaller than the header",
            });
        }
        let data = bytes.get(..total).ok_or(PlanError::Truncated {
            needed: total,
            available: bytes.len(),
        })?;
        let computed = crc32(data.get(HEADER_SIZE..).unwrap_or(&[]));
        if computed != h.crc32 {
            return Err(PlanError::CrcMismatch {
                stored: h.crc32,
                computed,
            });
        }
        let precision = Precision::from_u8(h.precision).ok_or(PlanError::BadEnum {
            what: "plan precision",
            index: 0,
            value: h.precision,
        })?;
        let sections = [
            Section {
                name: "tensor table",
                offset: h.tensor_table_offset,
                size: h.tensor_count as u64 * TENSOR_RECORD_SIZE as u64,
            },
            Section {
                name: "op table",
                offset: h.op_table_offset,
                size: h.op_count as u64 * OP_RECORD_SIZE as u64,
            },
            Section {
                name: "weight blob",
                offset: h.weights_offset,
                size: h.weights_size as u64,
            },
        ];
        check_sections(&sections, total as u64)?;
        if h.arena_size as u64 + h.scratch_bytes as u64 > u32::MAX as u64 {
            return Err(PlanError::BadSection {
                section: "arena",
                offset: h.arena_size,
                size: h.scratch_bytes as u64,
                reason: "arena plus scratch exceeds 4 GiB",
            });
        }
        if h.tensor_count == 0 || h.op_count == 0 {
            return Err(PlanError::BadSection {
                section: if h.tensor_count == 0 {
                    "tensor table"
                } else {
                    "op table"
                },
                offset: 0,
                size: 0,
                reason: "a plan needs at least one tensor and one op",
            });
        }
        let slice = |s: &Section| {
            let start = s.offset as usize;
            data.get(start..start + s.size as usize)
                .ok_or(PlanError::Truncated {
                    needed: start + s.size as usize,
                    available: data.len(),
                })
        };
        let plan = Plan {
            header: h,
            precision,
            tensors: slice(&sections[0])?,
            ops: slice(&sections[1])?,
            weights: slice(&sections[2])?,
            metadata: metadata(bytes),
        };
        plan.validate()?;
        Ok(plan)
    }

    /// The metadata trailer's contents (see [`metadata`]), if any.
    pub fn metadata(&self) -> Option<&'a [u8]> {
        self.metadata
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The host-supplied plan id.
    pub fn plan_id(&self) -> u32 {
        self.header.plan_id
    }

    /// Bytes of RAM the caller must pass to the executor: the activation
    /// arena (`arena_size` in the header) plus the kernel scratch
    /// (`scratch_bytes`), which follows it.
    pub fn arena_size(&self) -> usize {
        self.activation_arena_size() + self.scratch_bytes()
    }

    /// The header's `arena_size`: the bytes holding activation tensors.
    pub fn activation_arena_size(&self) -> usize {
        self.header.arena_size as usize
    }

    /// Bytes of kernel scratch after the activation arena (0 = none).
    pub fn scratch_bytes(&self) -> usize {
        self.header.scratch_bytes as usize
    }

    /// The plan's size in bytes (`total_size`).
    pub fn total_size(&self) -> usize {
        self.header.total_size as usize
    }

    pub fn tensor_count(&self) -> usize {
        self.header.tensor_count as usize
    }

    pub fn op_count(&self) -> usize {
        self.header.op_count as usize
    }

    /// Tensor-table record `index`.
    pub fn tensor(&self, index: u32) -> Result<TensorDesc, PlanError> {
        let at = (index as usize).wrapping_mul(TENSOR_RECORD_SIZE);
        let rec = self
            .tensors
            .get(at..)
            .filter(|_| index < self.header.tensor_count)
            .ok_or(PlanError::TensorIndex {
                op: None,
                index,
                count: self.header.tensor_count,
            })?;
        TensorDesc::decode(rec, index)
    }

    /// Op-table record `index`.
    pub fn op(&self, index: u32) -> Result<OpDesc, PlanError> {
        let at = (index as usize).wrapping_mul(OP_RECORD_SIZE);
        let rec = self
            .ops
            .get(at..)
            .filter(|_| index < self.header.op_count)
            .ok_or(PlanError::BadSection {
                section: "op table",
                offset: self.header.op_table_offset,
                size: self.ops.len() as u64,
                reason: "op index out of range",
            })?;
        OpDesc::decode(rec, index)
    }

    /// The graph input tensor.
    pub fn input(&self) -> Result<TensorDesc, PlanError> {
        self.tensor(self.header.input)
    }

    /// The graph output tensor.
    pub fn output(&self) -> Result<TensorDesc, PlanError> {
        self.tensor(self.header.output)
    }

    /// The weight blob.
    pub fn weights(&self) -> &'a [u8] {
        self.weights
    }

    /// The bytes of a tensor stored in the weight blob.
    pub fn weight_bytes(&self, t: &TensorDesc) -> Option<&'a [u8]> {
        if t.location != Location::Weights {
            return None;
        }
        self.weights.get(t.range())
    }

    /// A `BitmapRows` weight tensor's parts (sizes checked, content not:
    /// [`Plan::parse`] validated that).
    pub fn sparse_weights(&self, t: &TensorDesc) -> Result<BitmapRows<'a>, BadSparse> {
        let bytes = self.weight_bytes(t).ok_or("not in the weight blob")?;
        let rows = t.dims[0] as usize;
        let k = t.elements().unwrap_or(0) as usize / rows.max(1);
        BitmapRows::view(bytes, rows, k)
    }

    /// `count` little-endian i32 values at blob offset `offset`.
    pub fn i32_array(&self, offset: u32, count: usize) -> Option<I32s<'a>> {
        let start = offset as usize;
        let end = start.checked_add(count.checked_mul(4)?)?;
        self.weights.get(start..end).map(I32s)
    }

    fn validate(&self) -> Result<(), PlanError> {
        let arena = self.header.arena_size as u64;
        let blob = self.weights.len() as u64;
        for i in 0..self.header.tensor_count {
            let t = self.tensor(i)?;
            validate_tensor(&t, i, arena, blob)?;
            if t.location == Location::Weights && t.encoding == Encoding::Dense {
                let bytes = self.weight_bytes(&t).unwrap_or(&[]);
                if let Some(element) = first_non_finite(t.dtype, bytes) {
                    return Err(PlanError::NonFiniteWeight { tensor: i, element });
                }
            }
            if t.encoding == Encoding::BitmapRows {
                self.sparse_weights(&t)
                    .and_then(|w| w.validate())
                    .map_err(|reason| PlanError::BadSparse { tensor: i, reason })?;
            }
        }
        let act = self.precision.activation_dtype();
        for index in [self.header.input, self.header.output] {
            let t = self.tensor(index)?;
            if t.location != Location::Arena {
                return Err(PlanError::WrongLocation {
                    op: None,
                    tensor: index,
                });
            }
            if t.dtype != act {
                return Err(PlanError::WrongDType {
                    op: None,
                    tensor: index,
                    found: t.dtype,
                    expected: act,
                });
            }
        }
        let mut segment_end = 0u64;
        for i in 0..self.header.op_count {
            let op = self.op(i)?;
            let in_segment = (i as u64) <= segment_end && segment_end > 0;
            if op.kind == crate::format::OpKind::Tiled && !in_segment {
                segment_end = i as u64 + op.segment_ops() as u64;
            }
            ops::OpCheck {
                plan: self,
                index: i,
                op,
                in_segment: in_segment && op.kind != crate::format::OpKind::Tiled,
            }
            .run()?;
        }
        segment::check_all(self)
    }
}

/// Index of the first NaN or infinity in little-endian f16 or f32 `bytes`
/// (an all-ones exponent); `None` for other dtypes.
fn first_non_finite(dtype: DType, bytes: &[u8]) -> Option<u64> {
    let found = match dtype {
        DType::F32 => bytes.chunks_exact(4).position(|c| {
            u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7F80_0000 == 0x7F80_0000
        }),
        DType::F16 => bytes
            .chunks_exact(2)
            .position(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7C00 == 0x7C00),
        _ => None,
    };
    found.map(|i| i as u64)
}

/// The optional metadata trailer (host-side information such as the
/// preprocessing recipe; the engine never reads it): bytes after every
/// section, followed by `"EFMD"` and their length (u32, little-endian) as the
/// plan's last 8 bytes, inside `total_size` (so the CRC covers them). `None`
/// when the plan has none, or `bytes` is not a plan. Readers that do not know
/// the trailer skip it: it is in no section.
pub fn metadata(bytes: &[u8]) -> Option<&[u8]> {
    let h = Header::decode(bytes).ok()?;
    let total = h.total_size as usize;
    if total > bytes.len() || total < HEADER_SIZE + METADATA_TRAILER {
        return None;
    }
    let trailer = &bytes[total - METADATA_TRAILER..total];
    if trailer[..4] != METADATA_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
    let start = (total - METADATA_TRAILER).checked_sub(len)?;
    let end_of = |offset: u32, size: u64| offset as u64 + size;
    let sections_end = end_of(
        h.tensor_table_offset,
        h.tensor_count as u64 * TENSOR_RECORD_SIZE as u64,
    )
    .max(end_of(
        h.op_table_offset,
        h.op_count as u64 * OP_RECORD_SIZE as u64,
    ))
    .max(end_of(h.weights_offset, h.weights_size as u64));
    if (start as u64) < sections_end.max(HEADER_SIZE as u64) {
        return None;
    }
    Some(&bytes[start..total - METADATA_TRAILER])
}

fn check_sections(sections: &[Section; 3], total: u64) -> Result<(), PlanError> {
    let bad = |s: &Section, reason| PlanError::BadSection {
        section: s.name,
        offset: s.offset,
        size: s.size,
        reason,
    };
    for (i, s) in sections.iter().enumerate() {
        let start = s.offset as u64;
        if !start.is_multiple_of(SECTION_ALIGN as u64) {
            return Err(bad(s, "offset is not 16-byte aligned"));
        }
        if start < HEADER_SIZE as u64 {
            return Err(bad(s, "overlaps the header"));
        }
        if start + s.size > total {
            return Err(bad(s, "extends past the end of the plan"));
        }
        for o in sections.iter().skip(i + 1) {
            let (a, b) = (start, start + s.size);
            let (c, d) = (o.offset as u64, o.offset as u64 + o.size);
            if a < d && c < b {
                return Err(bad(s, "overlaps another section"));
            }
        }
    }
    Ok(())
}

fn validate_tensor(t: &TensorDesc, i: u32, arena: u64, blob: u64) -> Result<(), PlanError> {
    let rank = t.rank as usize;
    if !(1..=MAX_RANK).contains(&rank) {
        return Err(PlanError::BadRank {
            tensor: i,
            rank: t.rank,
        });
    }
    for (d, &v) in t.dims.iter().enumerate() {
        if (d < rank) != (v != 0) {
            return Err(PlanError::BadDims {
                tensor: i,
                dim: d as u32,
                value: v,
            });
        }
    }
    let dense = t
        .elements()
        .and_then(|e| e.checked_mul(t.dtype.size() as u64))
        .unwrap_or(u64::MAX);
    let expected = match t.encoding {
        Encoding::Dense => dense,
        Encoding::BitmapRows => {
            let bad = |reason| PlanError::BadSparse { tensor: i, reason };
            if t.dtype != DType::I8 || t.location != Location::Weights {
                return Err(bad("only int8 weights in the weight blob can be sparse"));
            }
            if rank != 2 && rank != 4 {
                return Err(bad(
                    "only rank-2 (dense) and rank-4 (conv) weights can be sparse",
                ));
            }
            // The exact size depends on the content, checked later; here
            // the bounds: the bitmap, then at most every element.
            let rows = t.dims[0] as u64;
            let k = dense / rows.max(1);
            let head = rows * k.div_ceil(8);
            if (t.length as u64) < head || t.length as u64 > head + dense {
                return Err(bad("length outside its bitmap plus at most every element"));
            }
            t.length as u64
        }
        Encoding::RowBuffer => {
            let bad = |reason| PlanError::BadRowBuffer { tensor: i, reason };
            if t.location != Location::Arena || rank != 4 || t.dims[0] != 1 {
                return Err(bad("only rank-4 activations (N = 1) can be row buffers"));
            }
            let row = t.dims[2] as u64 * t.dims[3] as u64 * t.dtype.size() as u64;
            let rows = (t.length as u64).checked_div(row).unwrap_or(0);
            if rows * row != t.length as u64 || rows == 0 || rows > t.dims[1] as u64 {
                return Err(bad(
                    "length is not a whole number of rows between one and the height",
                ));
            }
            t.length as u64
        }
    };
    if expected != t.length as u64 {
        return Err(PlanError::TensorLengthMismatch {
            tensor: i,
            length: t.length,
            expected,
        });
    }
    let limit = match t.location {
        Location::Arena => arena,
        Location::Weights => {
            if !(t.offset as usize).is_multiple_of(SECTION_ALIGN) {
                return Err(PlanError::TensorMisaligned {
                    tensor: i,
                    offset: t.offset,
                });
            }
            blob
        }
    };
    let end = t.offset as u64 + t.length as u64;
    if end > limit {
        return Err(PlanError::TensorOutOfBounds {
            tensor: i,
            end,
            limit,
        });
    }
    let zp = t.quant.zero_point;
    let zp_ok = match t.dtype {
        DType::I8 => (-128..=127).contains(&zp),
        _ => zp == 0,
    };
    if !zp_ok {
        return Err(PlanError::BadZeroPoint {
            tensor: i,
            zero_point: zp,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_is_iso_hdlc() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}

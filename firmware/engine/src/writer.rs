//! Plan writer for the host compiler (feature `std`).
//!
//! ```
//! use edgefit_engine::{OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant, DType};
//!
//! let mut b = PlanBuilder::new(Precision::F32);
//! let x = b.add_activation(DType::F32, &[1, 4], 0, Quant::NONE);
//! let w = b.add_weights_f32(&[2, 4], &[1.0; 8]);
//! let y = b.add_activation(DType::F32, &[1, 2], 16, Quant::NONE);
//! let mut op = OpDesc::new(OpKind::Dense, x, y);
//! op.weights = w;
//! b.add_op(op);
//! b.set_input(x).set_output(y).set_arena_size(24).set_plan_id(7);
//! let bytes = b.finish_checked().unwrap();
//! assert_eq!(Plan::parse(&bytes).unwrap().plan_id(), 7);
//! ```
//!
//! The builder does not validate as it goes; [`PlanBuilder::finish_checked`]
//! parses the result with the device's own validator, so the host sees
//! exactly the error a device would report.

use crate::format::{
    DType, Encoding, Header, Location, OpDesc, OpKind, Precision, Quant, TensorDesc, HEADER_SIZE,
    MAX_RANK, MAX_SCRATCH_BYTES, METADATA_MAGIC, METADATA_TRAILER, MIN_FORMAT_VERSION,
    OP_RECORD_SIZE, SECTION_ALIGN, TENSOR_RECORD_SIZE, TILED_FORMAT_VERSION, WEIGHT_ALIGN,
};
use crate::kernels::{scratch, Geom};
use crate::plan::{crc32, Plan};
use crate::PlanError;

/// Builds a plan in memory. Indices returned by the `add_*` methods are the
/// tensor and op indices in the plan.
#[derive(Debug, Clone)]
pub struct PlanBuilder {
    precision: Precision,
    plan_id: u32,
    arena_size: u32,
    /// Explicit scratch size; `None` = computed from the ops.
    scratch: Option<u32>,
    input: u32,
    output: u32,
    tensors: Vec<TensorDesc>,
    ops: Vec<OpDesc>,
    blob: Vec<u8>,
    metadata: Option<Vec<u8>>,
}

/// Saturates sizes that do not fit the format, so that parsing rejects them
/// instead of the writer panicking or silently wrapping.
fn u32_sat(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn dims4(dims: &[u32]) -> (u8, [u32; MAX_RANK]) {
    let mut d = [0u32; MAX_RANK];
    for (slot, v) in d.iter_mut().zip(dims) {
        *slot = *v;
    }
    (u8::try_from(dims.len()).unwrap_or(u8::MAX), d)
}

impl PlanBuilder {
    /// An empty plan. Input and output default to tensor 0, arena size and
    /// plan id to 0.
    pub fn new(precision: Precision) -> Self {
        PlanBuilder {
            precision,
            plan_id: 0,
            arena_size: 0,
            scratch: None,
            input: 0,
            output: 0,
            tensors: Vec::new(),
            ops: Vec::new(),
            blob: Vec::new(),
            metadata: None,
        }
    }

    /// Host-side metadata (e.g. the preprocessing recipe) stored after the
    /// weights, read back with [`crate::plan::metadata`]; the engine ignores it.
    pub fn set_metadata(&mut self, metadata: Vec<u8>) -> &mut Self {
        self.metadata = Some(metadata);
        self
    }

    pub fn set_precision(&mut self, precision: Precision) -> &mut Self {
        self.precision = precision;
        self
    }

    /// The host-chosen 32-bit id stored in the header.
    pub fn set_plan_id(&mut self, id: u32) -> &mut Self {
        self.plan_id = id;
        self
    }

    /// Bytes of arena the device must provide (the planner's peak).
    pub fn set_arena_size(&mut self, bytes: u32) -> &mut Self {
        self.arena_size = bytes;
        self
    }

    /// Overrides the kernel scratch size (rounded up to 16 bytes). By
    /// default the builder stores [`PlanBuilder::required_scratch_bytes`],
    /// which enables every fast kernel path; a smaller value (0 for a
    /// RAM-starved microcontroller) makes the kernels that would need more
    /// fall back to their scratch-free portable loops, with identical
    /// results.
    pub fn set_scratch_bytes(&mut self, bytes: u32) -> &mut Self {
        self.scratch = Some(bytes);
        self
    }

    /// Goes back to the computed scratch size (the default).
    pub fn set_auto_scratch(&mut self) -> &mut Self {
        self.scratch = None;
        self
    }

    /// The scratch size the plan will carry: the override if set, else
    /// [`PlanBuilder::required_scratch_bytes`].
    pub fn scratch_bytes(&self) -> u32 {
        self.scratch
            .map(|v| u32_sat(scratch::round(v as usize)))
            .unwrap_or_else(|| self.required_scratch_bytes())
    }

    /// The scratch every op's fastest kernel needs: the maximum over the
    /// ops (they run one at a time), a multiple of 16. Ops whose tensors
    /// are not (yet) valid count as 0.
    pub fn required_scratch_bytes(&self) -> u32 {
        let t = |i: u32| self.tensors.get(i as usize);
        let need = |op: &OpDesc| -> usize {
            let (Some(x), Some(y), Some(w)) = (t(op.input), t(op.output), t(op.weights)) else {
                return 0;
            };
            match op.kind {
                OpKind::Conv2d => {
                    let g = Geom::of_op(op, &x.dims, &y.dims);
                    if w.encoding == Encoding::BitmapRows {
                        scratch::conv_sparse_i8(&g)
                    } else {
                        scratch::conv(self.precision, &g, w.rank == 3)
                    }
                }
                OpKind::Dense => {
                    let n = |d: &TensorDesc| d.elements().unwrap_or(0) as usize;
                    scratch::dense(self.precision, n(x), n(y))
                }
                _ => 0,
            }
        };
        let max = self.ops.iter().map(need).max().unwrap_or(0);
        u32_sat(scratch::round(max))
    }

    /// The graph input tensor (an arena tensor of the activation dtype).
    pub fn set_input(&mut self, tensor: u32) -> &mut Self {
        self.input = tensor;
        self
    }

    /// The graph output tensor (an arena tensor of the activation dtype).
    pub fn set_output(&mut self, tensor: u32) -> &mut Self {
        self.output = tensor;
        self
    }

    /// Adds an activation tensor living in the arena at `arena_offset`.
    /// `dims` are NHWC for 4-D activations (N = 1). Returns its index.
    pub fn add_activation(
        &mut self,
        dtype: DType,
        dims: &[u32],
        arena_offset: u32,
        quant: Quant,
    ) -> u32 {
        let (rank, d) = dims4(dims);
        let elements = dims.iter().map(|&v| v as usize).product::<usize>();
        self.push_tensor(TensorDesc {
            dtype,
            rank,
            dims: d,
            location: Location::Arena,
            encoding: Encoding::Dense,
            offset: arena_offset,
            length: u32_sat(elements.saturating_mul(dtype.size())),
            quant,
        })
    }

    /// Makes activation `tensor` a tiled segment's row buffer holding `rows`
    /// rows at a time (its dims stay the whole tensor's; the plan becomes
    /// format version 2). Returns false if `tensor` is not a rank-4
    /// activation.
    pub fn set_row_buffer(&mut self, tensor: u32, rows: u32) -> bool {
        let Some(t) = self.tensors.get_mut(tensor as usize) else {
            return false;
        };
        if t.location != Location::Arena || t.rank != 4 {
            return false;
        }
        let row = (t.dims[2] as usize)
            .saturating_mul(t.dims[3] as usize)
            .saturating_mul(t.dtype.size());
        t.encoding = Encoding::RowBuffer;
        t.length = u32_sat(row.saturating_mul(rows as usize));
        true
    }

    /// Sets activation `tensor`'s arena offset.
    pub fn set_offset(&mut self, tensor: u32, arena_offset: u32) -> &mut Self {
        if let Some(t) = self.tensors.get_mut(tensor as usize) {
            t.offset = arena_offset;
        }
        self
    }

    /// The format version [`PlanBuilder::finish`] writes: 1 unless the plan
    /// uses a tiled segment (version 2), so older engines read every
    /// untiled plan.
    pub fn format_version(&self) -> u16 {
        let tiled = self.ops.iter().any(|o| o.kind == OpKind::Tiled)
            || self
                .tensors
                .iter()
                .any(|t| t.encoding == Encoding::RowBuffer);
        if tiled {
            TILED_FORMAT_VERSION
        } else {
            MIN_FORMAT_VERSION
        }
    }

    /// Adds a tensor whose little-endian `bytes` go into the weight blob
    /// (on a [`WEIGHT_ALIGN`] boundary). Returns its index.
    pub fn add_weights(&mut self, dtype: DType, dims: &[u32], bytes: &[u8], quant: Quant) -> u32 {
        let (rank, d) = dims4(dims);
        let offset = self.push_blob(bytes);
        self.push_tensor(TensorDesc {
            dtype,
            rank,
            dims: d,
            location: Location::Weights,
            encoding: Encoding::Dense,
            offset,
            length: u32_sat(bytes.len()),
            quant,
        })
    }

    /// int8 weights (symmetric: zero point 0; the scale is informational).
    pub fn add_weights_i8(&mut self, dims: &[u32], values: &[i8]) -> u32 {
        let bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        self.add_weights(DType::I8, dims, &bytes, Quant::NONE)
    }

    /// int8 weights of a regular Conv2d (OHWI) or a Dense op (`[out, in]`),
    /// stored as [`BitmapRows`](crate::kernels::sparse::BitmapRows) when
    /// that is smaller than dense, else dense. Returns the index and
    /// whether the sparse encoding was chosen.
    pub fn add_weights_i8_compact(&mut self, dims: &[u32], values: &[i8]) -> (u32, bool) {
        use crate::kernels::sparse::BitmapRows;
        let rows = dims.first().map_or(0, |&d| d as usize);
        let k = dims.iter().skip(1).map(|&d| d as usize).product::<usize>();
        let encoded = (dims.len() >= 2)
            .then(|| BitmapRows::encode(values, rows, k))
            .flatten()
            .filter(|e| e.len() < values.len());
        let Some(bytes) = encoded else {
            return (self.add_weights_i8(dims, values), false);
        };
        let (rank, d) = dims4(dims);
        let offset = self.push_blob(&bytes);
        let index = self.push_tensor(TensorDesc {
            dtype: DType::I8,
            rank,
            dims: d,
            location: Location::Weights,
            encoding: Encoding::BitmapRows,
            offset,
            length: u32_sat(bytes.len()),
            quant: Quant::NONE,
        });
        (index, true)
    }

    pub fn add_weights_f32(&mut self, dims: &[u32], values: &[f32]) -> u32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_weights(DType::F32, dims, &bytes, Quant::NONE)
    }

    /// f16 weights, converted from f32 with round-to-nearest-even.
    pub fn add_weights_f16(&mut self, dims: &[u32], values: &[f32]) -> u32 {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        self.add_weights(DType::F16, dims, &bytes, Quant::NONE)
    }

    /// An int8 plan's i32 bias, `[values.len()]`.
    pub fn add_bias_i32(&mut self, values: &[i32]) -> u32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_weights(DType::I32, &[u32_sat(values.len())], &bytes, Quant::NONE)
    }

    /// A float plan's f32 bias, `[values.len()]`.
    pub fn add_bias_f32(&mut self, values: &[f32]) -> u32 {
        self.add_weights_f32(&[u32_sat(values.len())], values)
    }

    /// Puts a raw i32 array in the blob and returns its blob offset: use it
    /// for an int8 conv/dense op's `multipliers` and `shifts` fields.
    pub fn add_i32_array(&mut self, values: &[i32]) -> u32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_blob(&bytes)
    }

    /// Appends an op (ops run in the order added). Returns its index.
    pub fn add_op(&mut self, op: OpDesc) -> u32 {
        self.ops.push(op);
        u32_sat(self.ops.len() - 1)
    }

    pub fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }

    pub fn ops(&self) -> &[OpDesc] {
        &self.ops
    }

    fn push_tensor(&mut self, t: TensorDesc) -> u32 {
        self.tensors.push(t);
        u32_sat(self.tensors.len() - 1)
    }

    fn push_blob(&mut self, bytes: &[u8]) -> u32 {
        let offset = self.blob.len();
        self.blob.extend_from_slice(bytes);
        self.blob
            .resize(self.blob.len().next_multiple_of(WEIGHT_ALIGN), 0);
        u32_sat(offset)
    }

    /// Serialises the plan and computes its CRC. Does not validate: use
    /// [`PlanBuilder::finish_checked`] unless you want an invalid plan.
    pub fn finish(&self) -> Vec<u8> {
        let tensor_off = HEADER_SIZE;
        let op_off = align(tensor_off + self.tensors.len() * TENSOR_RECORD_SIZE);
        let weights_off = (op_off + self.ops.len() * OP_RECORD_SIZE).next_multiple_of(WEIGHT_ALIGN);
        let weights_end = weights_off + self.blob.len();
        let meta_off = align(weights_end);
        let total = match &self.metadata {
            Some(m) => meta_off + m.len() + METADATA_TRAILER,
            None => weights_end,
        };
        let mut out = vec![0u8; total];
        if let Some(m) = &self.metadata {
            out[meta_off..meta_off + m.len()].copy_from_slice(m);
            let trailer = &mut out[total - METADATA_TRAILER..];
            trailer[..4].copy_from_slice(&METADATA_MAGIC);
            trailer[4..].copy_from_slice(&u32_sat(m.len()).to_le_bytes());
        }
        for (i, t) in self.tensors.iter().enumerate() {
            let at = tensor_off + i * TENSOR_RECORD_SIZE;
            out[at..at + TENSOR_RECORD_SIZE].copy_from_slice(&t.encode());
        }
        for (i, op) in self.ops.iter().enumerate() {
            let at = op_off + i * OP_RECORD_SIZE;
            out[at..at + OP_RECORD_SIZE].copy_from_slice(&op.encode());
        }
        out[weights_off..weights_end].copy_from_slice(&self.blob);
        let header = Header {
            version: self.format_version(),
            flags: 0,
            header_size: HEADER_SIZE as u32,
            total_size: u32_sat(total),
            crc32: crc32(&out[HEADER_SIZE..]),
            arena_size: self.arena_size,
            scratch_bytes: self.scratch_bytes(),
            plan_id: self.plan_id,
            precision: self.precision as u8,
            tensor_count: u32_sat(self.tensors.len()),
            tensor_table_offset: u32_sat(tensor_off),
            op_count: u32_sat(self.ops.len()),
            op_table_offset: u32_sat(op_off),
            weights_offset: u32_sat(weights_off),
            weights_size: u32_sat(self.blob.len()),
            input: self.input,
            output: self.output,
        };
        out[..HEADER_SIZE].copy_from_slice(&header.encode());
        out
    }

    /// [`PlanBuilder::finish`], then [`Plan::parse`] on the result: the plan
    /// is returned only if a device would accept it.
    pub fn finish_checked(&self) -> Result<Vec<u8>, PlanError> {
        // Values the record cannot hold, caught before encoding clamps them.
        let scratch = self.scratch_bytes();
        if scratch > MAX_SCRATCH_BYTES {
            return Err(PlanError::BadSection {
                section: "scratch",
                offset: self.arena_size,
                size: scratch as u64,
                reason: "scratch larger than the header can express",
            });
        }
        for (i, op) in self.ops.iter().enumerate() {
            if !op.has_residual() {
                continue;
            }
            for (what, v) in [
                ("conv_act_min", op.conv_act_min),
                ("conv_act_max", op.conv_act_max),
            ] {
                if !(-128..=127).contains(&v) {
                    return Err(PlanError::BadParam {
                        op: u32_sat(i),
                        what,
                        value: v as i64,
                    });
                }
            }
        }
        let bytes = self.finish();
        Plan::parse(&bytes)?;
        Ok(bytes)
    }
}

fn align(v: usize) -> usize {
    v.div_ceil(SECTION_ALIGN) * SECTION_ALIGN
}

/// Recomputes and stores the CRC of a plan image, e.g. after patching it.
/// Does nothing if `plan` is shorter than a header.
pub fn fix_crc(plan: &mut [u8]) {
    let total = crate::format::rd_u32(plan, 12).map_or(0, |v| v as usize);
    let end = total.min(plan.len()).max(HEADER_SIZE);
    if let Some(body) = plan.get(HEADER_SIZE..end) {
        let crc = crc32(body);
        let at = Header::CRC_OFFSET;
        plan[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// `plan` with `metadata` appended as the metadata trailer (see
/// [`crate::plan::metadata`]): total size and CRC updated, the result
/// validated. A plan that already carries metadata is refused.
pub fn append_metadata(plan: &[u8], metadata: &[u8]) -> Result<Vec<u8>, PlanError> {
    let parsed = Plan::parse(plan)?;
    let total = parsed.header().total_size as usize;
    if crate::plan::metadata(plan).is_some() {
        return Err(PlanError::BadSection {
            section: "metadata",
            offset: 0,
            size: total as u64,
            reason: "the plan already carries metadata",
        });
    }
    let mut out = plan[..total].to_vec();
    out.resize(align(total), 0);
    out.extend_from_slice(metadata);
    out.extend_from_slice(&METADATA_MAGIC);
    out.extend_from_slice(&u32_sat(metadata.len()).to_le_bytes());
    let new_total = u32_sat(out.len());
    out[12..16].copy_from_slice(&new_total.to_le_bytes());
    fix_crc(&mut out);
    Plan::parse(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlignedBytes;

    /// Every weight array starts on a cache line of the plan image, whatever
    /// the sizes before it and the table sizes; and the plan is valid.
    #[test]
    fn weight_arrays_start_on_cache_lines() {
        for (ops, widths) in [(1usize, [8usize, 5]), (2, [7, 3]), (3, [9, 13])] {
            let mut b = PlanBuilder::new(Precision::F32);
            let (k, n) = (widths[0], widths[1]);
            let x = b.add_activation(DType::F32, &[1, k as u32], 0, Quant::NONE);
            let mut prev = x;
            let mut at = 64;
            let mut weights = Vec::new();
            for _ in 0..ops {
                let y = b.add_activation(DType::F32, &[1, n as u32], at, Quant::NONE);
                let mut op = OpDesc::new(OpKind::Dense, prev, y);
                let w = vec![0.5f32; n * if prev == x { k } else { n }];
                let dims = [n as u32, (w.len() / n) as u32];
                op.weights = b.add_weights_f32(&dims, &w);
                op.bias = b.add_weights_f32(&[n as u32], &vec![0.25; n]);
                weights.extend([op.weights, op.bias]);
                b.add_op(op);
                prev = y;
                at += 64;
            }
            b.set_input(x).set_output(prev).set_arena_size(at);
            let image = AlignedBytes::copy_of(&b.finish_checked().expect("a valid plan"));
            let plan = Plan::parse(&image).expect("parses");
            assert_eq!(plan.header().weights_offset as usize % WEIGHT_ALIGN, 0);
            for t in weights {
                let desc = plan.tensor(t).expect("a tensor");
                let bytes = plan.weight_bytes(&desc).expect("in the blob");
                assert_eq!(bytes.as_ptr() as usize % WEIGHT_ALIGN, 0, "tensor {t}");
            }
        }
    }
}

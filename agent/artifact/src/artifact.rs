//! What the agent stores and runs: an edgefit plan (`EFPL`, the native
//! engine) or a *tract model artifact* (`EFTM`, the tract engines): an ONNX
//! model with the precision tract should run it in and its input shape.
//!
//! ```text
//! EFTM artifact, little-endian, 48-byte header then the model:
//!  0  magic "EFTM"
//!  4  format u16 = 1
//!  6  precision u8: 0 = f32, 1 = f16 (weights and activations, via tract's
//!     f32 -> f16 translator; inputs and outputs stay f32 on the wire)
//!  7  model format u8: 0 = ONNX
//!  8  artifact id u32 (PlanBegin.plan_id)
//! 12  input rank u8 (1..=6), 3 bytes zero
//! 16  input dims u32 x 6 (unused ones 0)
//! 40  model length u32
//! 44  CRC-32/ISO-HDLC of bytes 0..44 and the model (everything else)
//! 48  the model
//! ```
//!
//! A sample for a tract artifact is the f32 input tensor, little-endian,
//! row-major; a record's outputs are the f32 output tensor.

use edgefit_engine::Plan;

/// Magic of a tract model artifact.
pub const TRACT_MAGIC: [u8; 4] = *b"EFTM";
/// Version of the EFTM layout.
pub const TRACT_FORMAT: u16 = 1;
/// Bytes before the model.
pub const TRACT_HEADER: usize = 48;
const MAX_RANK: usize = 6;

/// Why bytes are not an artifact the agent can run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArtifactError {
    #[error("the file is empty: not a plan (EFPL) or a tract model artifact (EFTM)")]
    Empty,
    #[error("{0} bytes: too short for a plan (EFPL) or a tract model artifact (EFTM)")]
    TooShort(usize),
    #[error(
        "not an edgefit artifact: magic {0:02x?} is neither EFPL (plan) nor EFTM (tract model)"
    )]
    UnknownMagic([u8; 4]),
    #[error("plan: {0}")]
    Plan(#[from] edgefit_engine::PlanError),
    #[error("tract artifact truncated: {len} bytes, the header says {need}")]
    Truncated { len: usize, need: usize },
    #[error("tract artifact format {0}, this agent reads {TRACT_FORMAT}")]
    Version(u16),
    #[error("tract artifact: bad {what} {value}")]
    Field { what: &'static str, value: u64 },
    #[error("tract artifact: CRC {computed:08x}, header says {expected:08x}")]
    Crc { expected: u32, computed: u32 },
}

/// Precision of a tract artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TractPrecision {
    F32,
    F16,
}

impl TractPrecision {
    pub fn name(self) -> &'static str {
        match self {
            TractPrecision::F32 => "f32",
            TractPrecision::F16 => "f16",
        }
    }
}

/// A parsed tract model artifact, borrowing its model bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TractArtifact<'a> {
    pub id: u32,
    pub precision: TractPrecision,
    pub input_shape: Vec<usize>,
    /// The ONNX model.
    pub model: &'a [u8],
}

impl<'a> TractArtifact<'a> {
    /// Checks and reads an EFTM artifact.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArtifactError> {
        let truncated = |need| ArtifactError::Truncated {
            len: bytes.len(),
            need,
        };
        let header = bytes.get(..TRACT_HEADER).ok_or(truncated(TRACT_HEADER))?;
        let u16_at = |o: usize| u16::from_le_bytes([header[o], header[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
        let magic = [header[0], header[1], header[2], header[3]];
        if magic != TRACT_MAGIC {
            return Err(ArtifactError::UnknownMagic(magic));
        }
        let format = u16_at(4);
        if format != TRACT_FORMAT {
            return Err(ArtifactError::Version(format));
        }
        let field = |what, value: u64| ArtifactError::Field { what, value };
        let precision = match header[6] {
            0 => TractPrecision::F32,
            1 => TractPrecision::F16,
            p => return Err(field("precision", p.into())),
        };
        if header[7] != 0 {
            return Err(field("model format", header[7].into()));
        }
        let rank = header[12] as usize;
        if rank == 0 || rank > MAX_RANK || header[13..16] != [0, 0, 0] {
            return Err(field("input rank", rank as u64));
        }
        let mut input_shape = Vec::with_capacity(rank);
        for i in 0..MAX_RANK {
            let d = u32_at(16 + 4 * i);
            match (i < rank, d) {
                (true, 0) | (false, 1..) => return Err(field("input dimension", d.into())),
                (true, d) => input_shape.push(d as usize),
                (false, 0) => {}
            }
        }
        // At most 2^31 input values: a sample must fit a u32 byte count.
        let values = input_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= (u32::MAX / 4) as usize)
            .ok_or(field("input size", u64::MAX))?;
        let _ = values;
        let model_len = u32_at(40) as usize;
        let need = TRACT_HEADER + model_len;
        if bytes.len() != need {
            return Err(truncated(need));
        }
        let model = &bytes[TRACT_HEADER..];
        let computed = artifact_crc(&header[..44], model);
        let expected = u32_at(44);
        if computed != expected {
            return Err(ArtifactError::Crc { expected, computed });
        }
        Ok(TractArtifact {
            id: u32_at(8),
            precision,
            input_shape,
            model,
        })
    }

    /// Bytes of one input sample (f32).
    pub fn input_bytes(&self) -> usize {
        self.input_shape.iter().product::<usize>() * 4
    }
}

/// Writes an EFTM artifact for `model` (ONNX bytes). The id is the CRC of
/// the model and the precision, so the same model at two precisions gets two
/// ids.
pub fn encode_tract_artifact(
    model: &[u8],
    precision: TractPrecision,
    input_shape: &[usize],
) -> Result<Vec<u8>, ArtifactError> {
    let field = |what, value: u64| ArtifactError::Field { what, value };
    if input_shape.is_empty() || input_shape.len() > MAX_RANK {
        return Err(field("input rank", input_shape.len() as u64));
    }
    let model_len =
        u32::try_from(model.len()).map_err(|_| field("model length", model.len() as u64))?;
    let crc = edgefit_proto::crc32(model);
    let crc_at = 44;
    let p = match precision {
        TractPrecision::F32 => 0u8,
        TractPrecision::F16 => 1,
    };
    let mut out = Vec::with_capacity(TRACT_HEADER + model.len());
    out.extend_from_slice(&TRACT_MAGIC);
    out.extend_from_slice(&TRACT_FORMAT.to_le_bytes());
    out.push(p);
    out.push(0);
    out.extend_from_slice(&(crc ^ u32::from(p).wrapping_mul(0x9E37_79B9)).to_le_bytes());
    out.extend_from_slice(&[input_shape.len() as u8, 0, 0, 0]);
    for i in 0..MAX_RANK {
        let d = input_shape.get(i).copied().unwrap_or(0);
        let d = u32::try_from(d)
            .ok()
            .filter(|&d| d > 0 || i >= input_shape.len());
        out.extend_from_slice(&d.ok_or(field("input dimension", 0))?.to_le_bytes());
    }
    out.extend_from_slice(&model_len.to_le_bytes());
    let all = artifact_crc(&out[..crc_at], model);
    out.extend_from_slice(&all.to_le_bytes());
    out.extend_from_slice(model);
    TractArtifact::parse(&out)?;
    Ok(out)
}

/// The CRC that closes an EFTM artifact: its first 44 bytes, then the model.
fn artifact_crc(head: &[u8], model: &[u8]) -> u32 {
    let mut c = edgefit_proto::Crc32::new();
    c.update(head);
    c.update(model);
    c.value()
}

/// The kinds of artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// An edgefit plan, for the native engine.
    Plan,
    /// A tract model artifact.
    Tract(TractPrecision),
}

impl ArtifactKind {
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Plan => "plan",
            ArtifactKind::Tract(TractPrecision::F32) => "tract-f32",
            ArtifactKind::Tract(TractPrecision::F16) => "tract-f16",
        }
    }
}

/// Tells an artifact's kind and id from its bytes, checking it fully (a
/// plan's CRC and tables, a tract artifact's header and model CRC; the model
/// itself is checked when an engine loads it).
pub fn identify(bytes: &[u8]) -> Result<(ArtifactKind, u32), ArtifactError> {
    match bytes.get(..4) {
        Some(m) if m == edgefit_engine::MAGIC => {
            let plan = Plan::parse(bytes)?;
            Ok((ArtifactKind::Plan, plan.plan_id()))
        }
        Some(m) if m == TRACT_MAGIC => {
            let a = TractArtifact::parse(bytes)?;
            Ok((ArtifactKind::Tract(a.precision), a.id))
        }
        Some(m) => Err(ArtifactError::UnknownMagic([m[0], m[1], m[2], m[3]])),
        None if bytes.is_empty() => Err(ArtifactError::Empty),
        None => Err(ArtifactError::TooShort(bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_files_are_named_as_such() {
        let e = identify(&[]).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("not a plan"), "{e}");
        let e = identify(b"EF").unwrap_err().to_string();
        assert!(e.contains("2 bytes: too short for a plan"), "{e}");
    }

    #[test]
    fn tract_artifact_round_trips_and_rejects_damage() {
        let model = b"not really onnx, but bytes".to_vec();
        let a = encode_tract_artifact(&model, TractPrecision::F16, &[1, 1, 28, 28]).unwrap();
        let p = TractArtifact::parse(&a).unwrap();
        assert_eq!(p.precision, TractPrecision::F16);
        assert_eq!(p.input_shape, [1, 1, 28, 28]);
        assert_eq!(p.model, &model[..]);
        assert_eq!(p.input_bytes(), 784 * 4);
        assert_eq!(
            identify(&a).unwrap(),
            (ArtifactKind::Tract(TractPrecision::F16), p.id)
        );
        let f32_id = TractArtifact::parse(
            &encode_tract_artifact(&model, TractPrecision::F32, &[1, 1, 28, 28]).unwrap(),
        )
        .unwrap()
        .id;
        assert_ne!(f32_id, p.id);
        // Every truncation and every single-byte change is an error.
        for n in 0..a.len() {
            assert!(identify(&a[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 0x41;
            assert!(TractArtifact::parse(&b).is_err(), "byte {i}");
        }
        assert!(matches!(
            identify(b"ZZZZ1234"),
            Err(ArtifactError::UnknownMagic(_))
        ));
        assert!(encode_tract_artifact(&model, TractPrecision::F32, &[]).is_err());
        assert!(encode_tract_artifact(&model, TractPrecision::F32, &[1, 0, 2]).is_err());
    }
}

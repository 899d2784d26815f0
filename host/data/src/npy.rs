//! Writing float tensors as .npy files (what `edgefit preprocess --out` gives
//! NumPy and the preprocessing check).

use std::path::Path;

use npyz::WriterBuilder;

use crate::DataError;

/// Writes `data` (C order) as a little-endian float32 .npy array of `shape`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), DataError> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = vec![];
    let io = |e: std::io::Error| DataError::io(path, e);
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .map_err(io)?;
    w.extend(data.iter().copied()).map_err(io)?;
    w.finish().map_err(io)?;
    std::fs::write(path, bytes).map_err(io)
}

//! Writing float tensors as .npy files (what `edgefit preprocess --out` gives
//! NumPy and the preprocessing check).

use std::path::Path;

use npyz::WriterBuilder;

use crate::DataError;

/// `data` (C order) as the bytes of a .npy array of `shape`, in NumPy's
/// default dtype for `T` (`u8`: uint8, `i64`: int64, `f32`: float32, ...).
pub fn npy_bytes<T: npyz::AutoSerialize + Copy>(
    shape: &[u64],
    data: &[T],
) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(bytes)
}

/// Writes `data` (C order) as a little-endian float32 .npy array of `shape`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), DataError> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let io = |e: std::io::Error| DataError::io(path, e);
    std::fs::write(path, npy_bytes(&shape, data).map_err(io)?).map_err(io)
}

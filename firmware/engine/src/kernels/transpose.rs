//! Transpose: a copy that permutes up to four axes, for any element size.
//!
//! The compiler uses it where the engine's NHWC storage of a feature map and
//! ONNX's row-major NCHW order must meet (a Flatten feeding something other
//! than a dense layer, a Reshape into 4-D, the model's own Transpose). It is
//! a pure byte move, so it is bit-exact on every target by construction.

use super::{KResult, ShapeError};

/// Copies `x` (elements of `elem` bytes, dims `dims`, row-major) into `out`
/// so that output axis `i` runs over input axis `perm[i]`. `perm` must be a
/// permutation of `0..4`.
pub fn transpose(
    x: &[u8],
    dims: [usize; 4],
    perm: [usize; 4],
    elem: usize,
    out: &mut [u8],
) -> KResult {
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(ShapeError)?;
    let bytes = count.checked_mul(elem).ok_or(ShapeError)?;
    if elem == 0 || x.len() != bytes || out.len() != bytes {
        return Err(ShapeError);
    }
    let mut seen = [false; 4];
    for &p in &perm {
        if p >= 4 || seen[p] {
            return Err(ShapeError);
        }
        seen[p] = true;
    }
    // Row-major strides of the input, in elements.
    let stride_in = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    let od = [dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]];
    let os = [
        stride_in[perm[0]],
        stride_in[perm[1]],
        stride_in[perm[2]],
        stride_in[perm[3]],
    ];
    let mut at = 0usize;
    for a in 0..od[0] {
        for b in 0..od[1] {
            for c in 0..od[2] {
                let base = a * os[0] + b * os[1] + c * os[2];
                for d in 0..od[3] {
                    let src = (base + d * os[3]) * elem;
                    out[at..at + elem].copy_from_slice(&x[src..src + elem]);
                    at += elem;
                }
            }
        }
    }
    Ok(())
}

/// `dims` (rank 1 to 4) padded to four with leading 1s; `None` for rank > 4.
pub fn pad_to_4(dims: &[u32]) -> Option<[usize; 4]> {
    if dims.len() > 4 {
        return None;
    }
    let mut out = [1usize; 4];
    for (slot, &d) in out[4 - dims.len()..].iter_mut().zip(dims) {
        *slot = d as usize;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhwc_to_nchw_moves_channels_first() {
        // [1, H=1, W=2, C=3] NHWC: (w0: 0 1 2) (w1: 3 4 5) -> NCHW: c0 (0 3) c1 (1 4) c2 (2 5)
        let x: Vec<u8> = (0..6).collect();
        let mut out = [0u8; 6];
        transpose(&x, [1, 1, 2, 3], [0, 3, 1, 2], 1, &mut out).unwrap();
        assert_eq!(out, [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn four_byte_elements_move_whole() {
        let x: Vec<u8> = (0..24).collect(); // 2x3 f32-sized elements
        let mut out = [0u8; 24];
        transpose(&x, [1, 1, 2, 3], [0, 1, 3, 2], 4, &mut out).unwrap();
        let el = |i: u8| [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3];
        let want: Vec<u8> = [0, 3, 1, 4, 2, 5].into_iter().flat_map(el).collect();
        assert_eq!(out.to_vec(), want);
    }

    #[test]
    fn bad_permutations_and_sizes_are_errors() {
        let x = [0u8; 6];
        let mut out = [0u8; 6];
        assert!(transpose(&x, [1, 1, 2, 3], [0, 0, 1, 2], 1, &mut out).is_err());
        assert!(transpose(&x, [1, 1, 2, 3], [0, 4, 1, 2], 1, &mut out).is_err());
        assert!(transpose(&x, [1, 1, 2, 2], [0, 1, 2, 3], 1, &mut out).is_err());
        assert_eq!(pad_to_4(&[2, 3]), Some([1, 1, 2, 3]));
        assert_eq!(pad_to_4(&[1, 2, 3, 4, 5]), None);
    }
}

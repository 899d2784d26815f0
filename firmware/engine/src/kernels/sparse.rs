//! Bitmap-sparse int8 weights (tensor encoding 1, [`BitmapRows`]) and the
//! kernels that read them without expanding them: a zero-skipping dense
//! layer and a zero-skipping regular convolution. Integer sums are exact,
//! so skipping zero weights gives the same bytes as the dense kernels.
//!
//! Layout of a weight tensor of `rows = dims[0]` rows of `k` elements
//! (the product of the other dims; OHWI for a conv, `[out, in]` for a
//! dense layer), with `kb = ceil(k / 8)`:
//!
//! | part | bytes | content |
//! | --- | --- | --- |
//! | bitmap | `rows * kb` | bit `j % 8` of byte `r * kb + j / 8` is set when element `j` of row `r` is non-zero; bits past `k` are zero |
//! | values | `nnz` | the non-zero elements, row by row, in column order; none is zero |
//!
//! At 50% sparsity that is `k/8 + k/2` bytes per row instead of `k`. There
//! is no per-row index: every kernel walks the rows in order and finds a
//! row's first value by counting the bits of the rows before it as it goes.

use super::{Geom, I32s, KResult, Out8, ShapeError};

/// A validated-size view of a [`BitmapRows`] tensor. [`BitmapRows::validate`]
/// checks the content (the plan parser does, once); the kernels only rely
/// on the sizes and read everything with bounds checks.
#[derive(Debug, Clone, Copy)]
pub struct BitmapRows<'a> {
    rows: usize,
    k: usize,
    kb: usize,
    bitmap: &'a [u8],
    values: &'a [u8],
}

/// Why a [`BitmapRows`] tensor is malformed.
pub type BadSparse = &'static str;

impl<'a> BitmapRows<'a> {
    /// Bytes of the encoding for `rows` x `k` with `nnz` non-zeros.
    pub fn encoded_len(rows: usize, k: usize, nnz: usize) -> Option<usize> {
        rows.checked_mul(k.div_ceil(8))?.checked_add(nnz)
    }

    /// Splits `bytes` into its parts; checks sizes only.
    pub fn view(bytes: &'a [u8], rows: usize, k: usize) -> Result<Self, BadSparse> {
        if rows == 0 || k == 0 {
            return Err("no rows or empty rows");
        }
        let kb = k.div_ceil(8);
        let head = Self::encoded_len(rows, k, 0).ok_or("size overflows")?;
        if bytes.len() < head {
            return Err("shorter than its bitmap");
        }
        let (bitmap, values) = bytes.split_at(head);
        if values.len() > rows.saturating_mul(k) {
            return Err("more values than elements");
        }
        Ok(BitmapRows {
            rows,
            k,
            kb,
            bitmap,
            values,
        })
    }

    /// Checks the content: padding bits clear, as many values as set bits,
    /// none zero.
    pub fn validate(&self) -> Result<(), BadSparse> {
        let mut seen = 0usize;
        let tail_bits = self.k % 8;
        for r in 0..self.rows {
            let bits = self.row_bits(r);
            if tail_bits != 0 && bits.last().is_some_and(|b| b >> tail_bits != 0) {
                return Err("bitmap bits set past the row length");
            }
            seen += bits.iter().map(|b| b.count_ones() as usize).sum::<usize>();
        }
        if seen != self.values.len() {
            return Err("value count differs from the bitmap's set bits");
        }
        if self.values.contains(&0) {
            return Err("a stored value is zero");
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.k
    }

    /// Stored non-zero values.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    fn row_bits(&self, r: usize) -> &'a [u8] {
        let s = r.saturating_mul(self.kb);
        self.bitmap.get(s..s.saturating_add(self.kb)).unwrap_or(&[])
    }

    /// The rows in order: each row's bitmap and its values (from its first
    /// value to the end of all values; a kernel reads as many as the row
    /// has bits).
    fn iter_rows(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let mut start = 0usize;
        (0..self.rows).map(move |r| {
            let bits = self.row_bits(r);
            let vals = self.values.get(start..).unwrap_or(&[]);
            start += count_bits(bits, 0, self.k);
            (bits, vals)
        })
    }

    /// Writes the dense `rows * k` int8 bytes into `out`.
    pub fn decode_into(&self, out: &mut [u8]) -> KResult {
        if out.len() != self.rows.checked_mul(self.k).ok_or(ShapeError)? {
            return Err(ShapeError);
        }
        out.fill(0);
        for (row, (bits, vals)) in out.chunks_exact_mut(self.k).zip(self.iter_rows()) {
            let mut vi = 0;
            for_each_bit(bits, 0, self.k, |j| {
                if let (Some(d), Some(v)) = (row.get_mut(j), vals.get(vi)) {
                    *d = *v;
                }
                vi += 1;
            });
        }
        Ok(())
    }

    /// Encodes `rows` rows of `k` int8 values.
    #[cfg(any(feature = "std", test))]
    pub fn encode(dense: &[i8], rows: usize, k: usize) -> Option<std::vec::Vec<u8>> {
        if rows == 0 || k == 0 || rows.checked_mul(k)? != dense.len() {
            return None;
        }
        let kb = k.div_ceil(8);
        let nnz = dense.iter().filter(|&&v| v != 0).count();
        let mut out = std::vec![0u8; Self::encoded_len(rows, k, nnz)?];
        let (bitmap, values) = out.split_at_mut(rows * kb);
        let mut n = 0usize;
        for (r, row) in dense.chunks_exact(k).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0 {
                    bitmap[r * kb + j / 8] |= 1 << (j % 8);
                    values[n] = v as u8;
                    n += 1;
                }
            }
        }
        Some(out)
    }
}

/// The bitmap is read a machine word at a time: 64 bits on 64-bit CPUs,
/// 32 on Cortex-M (where 64-bit shifts and counts cost several
/// instructions each).
#[cfg(target_pointer_width = "64")]
type Word = u64;
#[cfg(not(target_pointer_width = "64"))]
type Word = u32;
const WORD_BITS: usize = Word::BITS as usize;
const WORD_BYTES: usize = WORD_BITS / 8;

/// Little-endian word from up to [`WORD_BYTES`] bytes at `at` (zeros past
/// the end).
#[inline(always)]
fn ld_word(b: &[u8], at: usize) -> Word {
    match b.get(at..at.saturating_add(WORD_BYTES)) {
        Some(w) => {
            let mut a = [0u8; WORD_BYTES];
            a.copy_from_slice(w);
            Word::from_le_bytes(a)
        }
        None => b
            .get(at..)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |acc, &v| (acc << 8) | v as Word),
    }
}

/// The bits of `[pos, to)` that fit in one word starting at `pos`, shifted
/// down to bit 0, and how many positions that word covers.
#[inline(always)]
fn word_at(bits: &[u8], pos: usize, to: usize) -> (Word, usize) {
    let sh = pos % 8;
    let n = (WORD_BITS - sh).min(to - pos);
    let mut m = ld_word(bits, pos / 8) >> sh;
    if n < WORD_BITS {
        m &= (1 << n) - 1;
    }
    (m, n)
}

/// Calls `f(j - from)` for each set bit `j` in `[from, to)`, in order.
#[inline(always)]
fn for_each_bit(bits: &[u8], from: usize, to: usize, mut f: impl FnMut(usize)) {
    let mut pos = from;
    while pos < to {
        let (mut m, n) = word_at(bits, pos, to);
        let base = pos - from;
        while m != 0 {
            f(base + m.trailing_zeros() as usize);
            m &= m - 1;
        }
        pos += n;
    }
}

/// Set bits in `[from, to)`.
#[inline]
fn count_bits(bits: &[u8], from: usize, to: usize) -> usize {
    let mut pos = from;
    let mut count = 0;
    while pos < to {
        let (m, n) = word_at(bits, pos, to);
        count += m.count_ones() as usize;
        pos += n;
    }
    count
}

/// `Σ v * (x[j] - zp)` over the set bits `j` of `[from, to)` (x indexed
/// from `from`), reading values from `vals`; returns the sum and the
/// number of values read.
#[inline(always)]
fn sparse_dot(bits: &[u8], from: usize, to: usize, vals: &[u8], x: &[u8], zp: i32) -> (i32, usize) {
    let mut acc = 0i32;
    let mut vi = 0usize;
    for_each_bit(bits, from, to, |j| {
        let v = vals.get(vi).map_or(0, |&v| v as i8 as i32);
        let xv = x.get(j).map_or(zp, |&v| v as i8 as i32);
        acc = acc.wrapping_add(v.wrapping_mul(xv.wrapping_sub(zp)));
        vi += 1;
    });
    (acc, vi)
}

/// `w` has `n` rows and the requantisation arrays and bias `n` entries.
fn channels_match(w: &BitmapRows<'_>, o: &Out8<'_, '_>, bias: Option<I32s<'_>>, n: usize) -> bool {
    w.rows == n
        && o.q.multipliers.len() >= n
        && o.q.shifts.len() >= n
        && bias.is_none_or(|b| b.len() >= n)
}

/// int8 dense layer over sparse weights, skipping zero weights: `x` has
/// `k` values, `out` one per row.
pub(crate) fn dense_i8(
    x: &[u8],
    w: &BitmapRows<'_>,
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> KResult {
    let n = out.len();
    if x.len() != w.k || !channels_match(w, o, bias, n) {
        return Err(ShapeError);
    }
    for (r, (bits, vals)) in w.iter_rows().enumerate() {
        let (dot, _) = sparse_dot(bits, 0, w.k, vals, x, o.q.in_zp);
        let acc = bias.map_or(0, |b| b.get(r)).wrapping_add(dot);
        o.store(acc, r, r, out);
    }
    Ok(())
}

/// Regular (groups = 1) int8 convolution over sparse OHWI weights,
/// skipping zero weights; needs no scratch. Channel-major (the bitmap's
/// rows are walked in order), then per output pixel, per kernel row, one
/// run of contiguous in-bounds taps as in the portable dense kernel.
pub(crate) fn conv2d_i8(
    g: &Geom,
    x: &[u8],
    w: &BitmapRows<'_>,
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> KResult {
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let k = kh.checked_mul(kw).and_then(|v| v.checked_mul(c));
    if g.input_len() != Some(x.len())
        || g.output_len() != Some(out.len())
        || k != Some(w.k)
        || g.stride_h == 0
        || g.stride_w == 0
        || !channels_match(w, o, bias, n)
    {
        return Err(ShapeError);
    }
    o.check(out.len())?;
    let krow = kw * c;
    // Channel-major (rows of the bitmap in order, see the module docs);
    // outputs are NHWC, so channel `oc` of pixel `p` is `out[p * n + oc]`.
    for (oc, (bits, vals)) in w.iter_rows().enumerate() {
        let bias_oc = bias.map_or(0, |b| b.get(oc));
        let mut i = oc;
        for oy in 0..g.out_h {
            let rows = g.rows(oy);
            // Values of the kernel rows above the window.
            let above = count_bits(bits, 0, rows.k0 * krow);
            for ox in 0..g.out_w {
                let cols = g.cols(ox);
                let (c0, c1) = (cols.k0 * c, cols.k1 * c);
                let mut acc = bias_oc;
                let mut vi = above;
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let base = ky * krow;
                    if c0 > 0 {
                        vi += count_bits(bits, base, base + c0);
                    }
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c;
                    let xr = x.get(xs..xs + (c1 - c0)).ok_or(ShapeError)?;
                    let (dot, used) = sparse_dot(
                        bits,
                        base + c0,
                        base + c1,
                        vals.get(vi..).unwrap_or(&[]),
                        xr,
                        o.q.in_zp,
                    );
                    acc = acc.wrapping_add(dot);
                    vi += used;
                    if c1 < krow {
                        vi += count_bits(bits, base + c1, base + krow);
                    }
                }
                o.store(acc, oc, i, out);
                i += n;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(rows: usize, k: usize, seed: u32) -> Vec<i8> {
        let mut s = seed;
        (0..rows * k)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let v = (s >> 16) as i8;
                if (s >> 8).is_multiple_of(3) {
                    v
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn encode_decode_round_trips_every_row_length() {
        for k in 1..70 {
            let dense = pattern(5, k, k as u32);
            let enc = BitmapRows::encode(&dense, 5, k).unwrap();
            let view = BitmapRows::view(&enc, 5, k).unwrap();
            view.validate().unwrap();
            let nnz = dense.iter().filter(|&&v| v != 0).count();
            assert_eq!(view.nnz(), nnz);
            assert_eq!(enc.len(), BitmapRows::encoded_len(5, k, nnz).unwrap());
            let mut back = vec![0u8; 5 * k];
            view.decode_into(&mut back).unwrap();
            let back: Vec<i8> = back.iter().map(|&b| b as i8).collect();
            assert_eq!(back, dense, "k = {k}");
        }
    }

    #[test]
    fn validate_rejects_each_malformation() {
        let dense = pattern(4, 13, 7);
        let enc = BitmapRows::encode(&dense, 4, 13).unwrap();
        let check = |b: &[u8]| BitmapRows::view(b, 4, 13).and_then(|v| v.validate());
        assert!(check(&enc).is_ok());
        // A padding bit (row length 13: byte 1 holds bits 8..16).
        let mut bad = enc.clone();
        bad[1] |= 0x80;
        assert!(check(&bad).is_err());
        // One more set bit (the lowest clear one of byte 0): the values no
        // longer match the bitmap.
        let mut bad = enc.clone();
        bad[0] |= !bad[0] & bad[0].wrapping_add(1);
        assert!(check(&bad).is_err());
        // A stored zero.
        let mut bad = enc.clone();
        let last = bad.len() - 1;
        bad[last] = 0;
        assert!(check(&bad).is_err());
        // One value too many or too few.
        let mut bad = enc.clone();
        bad.push(1);
        assert!(check(&bad).is_err());
        assert!(check(&enc[..enc.len() - 1]).is_err());
        assert!(check(&enc[..10]).is_err());
    }

    #[test]
    fn bit_ranges_at_any_alignment() {
        let bits = [0b1010_1101u8, 0xff, 0x01, 0x80, 0, 0, 0, 0, 0, 0x55];
        for from in 0..80 {
            for to in from..80 {
                let want: Vec<usize> = (from..to)
                    .filter(|&j| bits[j / 8] >> (j % 8) & 1 == 1)
                    .collect();
                let mut got = Vec::new();
                for_each_bit(&bits, from, to, |j| got.push(j + from));
                assert_eq!(got, want, "{from}..{to}");
                assert_eq!(count_bits(&bits, from, to), want.len());
            }
        }
    }
}

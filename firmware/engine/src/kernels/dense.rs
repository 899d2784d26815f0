//! Fully connected layer: `y[o] = bias[o] + Σ_i x[i] * w[o, i]`, weights
//! `[out, in]` (row-major, one contiguous row per output).

use super::dot::dot_i8;
use super::{FloatAct, FloatWeight, I32s, KResult, QuantParams, ShapeError};

/// int8 dense. `x` has `in_f` values, `out` has `out_f`, `w` `out_f * in_f`.
pub fn dense_i8(
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    q: &QuantParams<'_>,
    out: &mut [u8],
) -> KResult {
    let (in_f, out_f) = (x.len(), out.len());
    if in_f == 0
        || in_f.checked_mul(out_f) != Some(w.len())
        || q.multipliers.len() < out_f
        || q.shifts.len() < out_f
        || bias.is_some_and(|b| b.len() < out_f)
    {
        return Err(ShapeError);
    }
    for (o, (y, row)) in out.iter_mut().zip(w.chunks_exact(in_f)).enumerate() {
        let acc = bias
            .map_or(0, |b| b.get(o))
            .wrapping_add(dot_i8(x, row, q.in_zp));
        *y = q.requantize(acc, o);
    }
    Ok(())
}

/// Float dense: f32 activations and bias, `W` weights.
pub fn dense_f<W: FloatWeight>(
    x: &[u8],
    w: &[u8],
    bias: Option<&[u8]>,
    act: FloatAct,
    out: &mut [u8],
) -> KResult {
    let (in_f, out_f) = (x.len() / 4, out.len() / 4);
    if in_f == 0
        || !x.len().is_multiple_of(4)
        || !out.len().is_multiple_of(4)
        || in_f.checked_mul(out_f).and_then(|v| v.checked_mul(W::SIZE)) != Some(w.len())
        || bias.is_some_and(|b| b.len() < out.len())
    {
        return Err(ShapeError);
    }
    let rows = w.chunks_exact(in_f * W::SIZE);
    for (o, (y, row)) in out.chunks_exact_mut(4).zip(rows).enumerate() {
        let b = bias.map_or(0.0, |b| super::f32_at(b, o));
        super::st_f32(y, act.apply(b + super::conv::dot_f::<W>(x, row)));
    }
    Ok(())
}

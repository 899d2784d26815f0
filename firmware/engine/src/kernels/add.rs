//! Element-wise addition of two same-shape tensors, with fused activation.
//!
//! The output may be the very same arena region as one (or both) inputs:
//! each element is read before it is written, so in-place is safe. The
//! executor calls [`binary_in_place`] for that case.

// The Cortex-M DSP build uses the branch-light form (the same results for
// every input, tested in `requant`): a fused residual Add runs three of
// these per element.
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
use super::requant::multiply_by_quantized_multiplier as mbqm;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
use super::requant::multiply_fast as mbqm;
use super::{ld_f32, FloatAct, KResult, ShapeError};
use crate::format::AddParams;

/// int8 Add context: TFLite's fixed-point parameters plus zero points and
/// the output clamp.
#[derive(Debug, Clone, Copy)]
pub struct AddQuant {
    pub params: AddParams,
    pub zp1: i32,
    pub zp2: i32,
    pub out_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl AddQuant {
    /// TFLite int8 add for one element.
    #[inline]
    pub fn add(&self, x1: u8, x2: u8) -> u8 {
        let p = &self.params;
        let ls = p.left_shift.clamp(0, 30);
        let a = (x1 as i8 as i32)
            .wrapping_sub(self.zp1)
            .wrapping_mul(1 << ls);
        let b = (x2 as i8 as i32)
            .wrapping_sub(self.zp2)
            .wrapping_mul(1 << ls);
        let a = mbqm(a, p.input1_multiplier, p.input1_shift);
        let b = mbqm(b, p.input2_multiplier, p.input2_shift);
        let v =
            mbqm(a.wrapping_add(b), p.output_multiplier, p.output_shift).wrapping_add(self.out_zp);
        (v.max(self.act_min).min(self.act_max).clamp(-128, 127) as i8) as u8
    }
}

/// Applies `f` element-wise: `out[i] = f(a[i], b[i])` for `N`-byte elements.
pub fn binary<const N: usize>(
    a: &[u8],
    b: &[u8],
    out: &mut [u8],
    f: impl Fn([u8; N], [u8; N]) -> [u8; N],
) -> KResult {
    if a.len() != out.len() || b.len() != out.len() || !out.len().is_multiple_of(N) {
        return Err(ShapeError);
    }
    let ins = a.chunks_exact(N).zip(b.chunks_exact(N));
    for (o, (x, y)) in out.chunks_exact_mut(N).zip(ins) {
        o.copy_from_slice(&f(arr(x), arr(y)));
    }
    Ok(())
}

/// In-place variant: `acc` is one input and the output. `other` is the other
/// input, or `None` when both inputs are `acc`. `acc_first` tells whether
/// `acc` is the first operand (Add's parameters are not symmetric).
pub fn binary_in_place<const N: usize>(
    acc: &mut [u8],
    other: Option<&[u8]>,
    acc_first: bool,
    f: impl Fn([u8; N], [u8; N]) -> [u8; N],
) -> KResult {
    if other.is_some_and(|o| o.len() != acc.len()) || !acc.len().is_multiple_of(N) {
        return Err(ShapeError);
    }
    for (i, o) in acc.chunks_exact_mut(N).enumerate() {
        let mine = arr(o);
        let theirs = other.map_or(mine, |b| b.get(i * N..).map_or([0; N], arr));
        let v = if acc_first {
            f(mine, theirs)
        } else {
            f(theirs, mine)
        };
        o.copy_from_slice(&v);
    }
    Ok(())
}

/// The first `N` bytes as an array (zero-filled if shorter).
#[inline]
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    for (d, v) in a.iter_mut().zip(s) {
        *d = *v;
    }
    a
}

/// int8 element function for [`binary`] / [`binary_in_place`].
pub fn add_i8(q: &AddQuant) -> impl Fn([u8; 1], [u8; 1]) -> [u8; 1] + '_ {
    move |a, b| [q.add(a[0], b[0])]
}

/// f32 element function for [`binary`] / [`binary_in_place`].
pub fn add_f32(act: FloatAct) -> impl Fn([u8; 4], [u8; 4]) -> [u8; 4] {
    move |a, b| act.apply(ld_f32(&a) + ld_f32(&b)).to_le_bytes()
}

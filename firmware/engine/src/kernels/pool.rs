//! Pooling, NHWC: max, average and global average.
//!
//! Only in-bounds cells take part: max ignores padding, and the average
//! divides by the number of in-bounds cells (`count_include_pad = false`).
//! The validator guarantees every window has at least one in-bounds cell;
//! an empty window would give the clamp of 0 (int8: of the zero point's
//! offset 0) rather than a division by zero.

use super::requant::rounding_average;
use super::{ld_f32, st_f32, FloatAct, Geom, KResult, ShapeError};

/// Channels per block of stack accumulators.
const BLOCK: usize = 64;

/// int8 output clamp shared by the pools.
#[derive(Debug, Clone, Copy)]
pub struct PoolClamp {
    pub act_min: i32,
    pub act_max: i32,
}

impl PoolClamp {
    #[inline]
    fn apply(&self, v: i64) -> u8 {
        (v.max(self.act_min as i64)
            .min(self.act_max as i64)
            .clamp(-128, 127) as i8) as u8
    }
}

fn check(g: &Geom, x: &[u8], out: &[u8], size: usize) -> KResult {
    let ok = g.in_c == g.out_c
        && g.stride_h > 0
        && g.stride_w > 0
        && g.input_len().and_then(|v| v.checked_mul(size)) == Some(x.len())
        && g.output_len().and_then(|v| v.checked_mul(size)) == Some(out.len());
    if ok {
        Ok(())
    } else {
        Err(ShapeError)
    }
}

/// The geometry of a global average pool over an `h x w x c` input.
pub fn global_geom(h: usize, w: usize, c: usize) -> Geom {
    Geom {
        in_h: h,
        in_w: w,
        in_c: c,
        out_h: 1,
        out_w: 1,
        out_c: c,
        kernel_h: h,
        kernel_w: w,
        stride_h: 1,
        stride_w: 1,
        pad_top: 0,
        pad_left: 0,
    }
}

/// int8 max pool.
pub fn max_pool_i8(g: &Geom, x: &[u8], clamp: PoolClamp, out: &mut [u8]) -> KResult {
    max_pool_i8_bytes(g, x, clamp, out)
}

/// int8 average pool (also global average pool with [`global_geom`]).
/// Input and output share scale and zero point, so no requantisation.
pub fn avg_pool_i8(g: &Geom, x: &[u8], clamp: PoolClamp, out: &mut [u8]) -> KResult {
    // A window of up to 2^23 cells sums to at most 2^30 in magnitude: i32
    // sums are exact there, and vectorise (i64 ones barely do).
    if g.kernel_h.saturating_mul(g.kernel_w) <= 1 << 23 {
        avg_pool_sums::<i32>(g, x, clamp, out)
    } else {
        // Sums in i64: a window can hold up to 65535^2 cells.
        avg_pool_sums::<i64>(g, x, clamp, out)
    }
}

fn avg_pool_sums<A>(g: &Geom, x: &[u8], clamp: PoolClamp, out: &mut [u8]) -> KResult
where
    A: Copy + Default + core::ops::Add<Output = A> + From<i8> + Into<i64>,
{
    check(g, x, out, 1)?;
    let c = g.in_c;
    let mut pixels = out.chunks_exact_mut(c);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let count = (rows.len() * cols.len()) as i64;
            let px = pixels.next().ok_or(ShapeError)?;
            for (blk, opx) in px.chunks_mut(BLOCK).enumerate() {
                let c0 = blk * BLOCK;
                let nb = opx.len();
                let mut acc = [A::default(); BLOCK];
                for r in 0..rows.len() {
                    for s in 0..cols.len() {
                        let xs = ((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0;
                        let xr = x.get(xs..xs + nb).ok_or(ShapeError)?;
                        for (a, &v) in acc.iter_mut().zip(xr) {
                            *a = *a + A::from(v as i8);
                        }
                    }
                }
                for (o, &a) in opx.iter_mut().zip(acc.iter()) {
                    *o = clamp.apply(rounding_average(a.into(), count));
                }
            }
        }
    }
    Ok(())
}

/// int8 max pool on bytes: `v ^ 0x80` maps int8 order onto unsigned byte
/// order, so the running maximum is a plain `u8` max (which vectorises
/// even on baseline x86-64). Same result as the i64 loop: the max of the
/// in-bounds cells (0 for an empty window), then the clamp.
fn max_pool_i8_bytes(g: &Geom, x: &[u8], clamp: PoolClamp, out: &mut [u8]) -> KResult {
    check(g, x, out, 1)?;
    // The clamp in the same unsigned order: one clamp to the bounds clamped
    // to -128..=127 equals `PoolClamp::apply` (both give the intersection of
    // the ranges, or `hi` when `lo > hi`), and it vectorises as byte max/min.
    let lo = (clamp.act_min.clamp(-128, 127) as i8 as u8) ^ 0x80;
    let hi = (clamp.act_max.clamp(-128, 127) as i8 as u8) ^ 0x80;
    let c = g.in_c;
    let mut pixels = out.chunks_exact_mut(c);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let empty = rows.is_empty() || cols.is_empty();
            let px = pixels.next().ok_or(ShapeError)?;
            for (blk, opx) in px.chunks_mut(BLOCK).enumerate() {
                let c0 = blk * BLOCK;
                let nb = opx.len();
                let mut acc = [0u8; BLOCK];
                for r in 0..rows.len() {
                    for s in 0..cols.len() {
                        let xs = ((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0;
                        let xr = x.get(xs..xs + nb).ok_or(ShapeError)?;
                        for (a, &v) in acc.iter_mut().zip(xr) {
                            *a = (*a).max(v ^ 0x80);
                        }
                    }
                }
                if empty {
                    opx.fill(clamp.apply(0));
                    continue;
                }
                for (o, &a) in opx.iter_mut().zip(acc.iter()) {
                    *o = a.max(lo).min(hi) ^ 0x80;
                }
            }
        }
    }
    Ok(())
}

/// f32 max pool.
pub fn max_pool_f32(g: &Geom, x: &[u8], act: FloatAct, out: &mut [u8]) -> KResult {
    pool_f32::<true>(g, x, act, out)
}

/// f32 average pool (also global average pool with [`global_geom`]).
pub fn avg_pool_f32(g: &Geom, x: &[u8], act: FloatAct, out: &mut [u8]) -> KResult {
    pool_f32::<false>(g, x, act, out)
}

fn pool_f32<const MAX: bool>(g: &Geom, x: &[u8], act: FloatAct, out: &mut [u8]) -> KResult {
    check(g, x, out, 4)?;
    let c = g.in_c;
    let mut pixels = out.chunks_exact_mut(c * 4);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let count = rows.len() * cols.len();
            let px = pixels.next().ok_or(ShapeError)?;
            for (blk, opx) in px.chunks_mut(BLOCK * 4).enumerate() {
                let c0 = blk * BLOCK;
                let nb = opx.len() / 4;
                let mut acc = [if MAX { f32::NEG_INFINITY } else { 0.0 }; BLOCK];
                for r in 0..rows.len() {
                    for s in 0..cols.len() {
                        let xs = (((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0) * 4;
                        let xr = x.get(xs..xs + nb * 4).ok_or(ShapeError)?;
                        for (a, v) in acc.iter_mut().zip(xr.chunks_exact(4)) {
                            let v = ld_f32(v);
                            *a = if MAX { a.max(v) } else { *a + v };
                        }
                    }
                }
                for (o, &a) in opx.chunks_exact_mut(4).zip(acc.iter()) {
                    let v = if count == 0 {
                        0.0
                    } else if MAX {
                        a
                    } else {
                        a / count as f32
                    };
                    st_f32(o, act.apply(v));
                }
            }
        }
    }
    Ok(())
}

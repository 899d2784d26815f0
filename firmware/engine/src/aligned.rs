//! Heap bytes that start on a cache line (`std` only).

use std::collections::TryReserveError;
use std::ops::{Deref, DerefMut};

/// Bytes on the heap whose first byte sits on a 64-byte boundary: for an
/// engine's arena and for a plan image the host runs from.
///
/// [`Engine`](crate::Engine) runs over any `&mut [u8]` from any
/// `&[u8]` plan, but its vector kernels load 32 or 64 bytes at a time from
/// activations, from the scratch's packed panels and (f32) from the
/// weights, at offsets the plan aligns relative to the arena's or the
/// plan's start ([`WEIGHT_ALIGN`](crate::format::WEIGHT_ALIGN)): off a
/// cache line, many of those loads straddle two lines. A large `Vec<u8>`
/// from glibc starts 16 bytes past a page; measured on an Intel Xeon (AVX2
/// kernels, `plan_profile`), ResNet-50 ran 7% slower in int8 and 6% slower
/// in f32 from such an arena than from this one. Dereferences to its
/// `len` bytes.
#[derive(Debug)]
pub struct AlignedBytes {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBytes {
    /// The alignment of the first byte: a cache line on the x86-64 and
    /// aarch64 cores the engine targets.
    pub const ALIGN: usize = 64;

    /// `len` zero bytes, or the allocator's refusal (no abort).
    pub fn try_zeroed(len: usize) -> Result<AlignedBytes, TryReserveError> {
        let total = len.saturating_add(Self::ALIGN - 1);
        let mut buf = Vec::new();
        buf.try_reserve_exact(total)?;
        buf.resize(total, 0);
        Ok(Self::within(buf, len))
    }

    /// `len` zero bytes; aborts like `vec![0; len]` if memory runs out.
    pub fn zeroed(len: usize) -> AlignedBytes {
        Self::within(vec![0u8; len.saturating_add(Self::ALIGN - 1)], len)
    }

    /// A copy of `bytes` (e.g. a plan image read from a file).
    pub fn copy_of(bytes: &[u8]) -> AlignedBytes {
        let mut a = Self::zeroed(bytes.len());
        a.copy_from_slice(bytes);
        a
    }

    /// The aligned `len` bytes inside `buf` (`len + ALIGN - 1` long).
    fn within(buf: Vec<u8>, len: usize) -> AlignedBytes {
        let start = (Self::ALIGN - buf.as_ptr() as usize % Self::ALIGN) % Self::ALIGN;
        AlignedBytes { buf, start, len }
    }
}

impl Deref for AlignedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_with_the_asked_bytes() {
        for len in [0, 1, 63, 64, 65, 4096, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let zeroed = [
                AlignedBytes::zeroed(len),
                AlignedBytes::try_zeroed(len).unwrap(),
            ];
            for mut a in zeroed {
                assert_eq!(a.len(), len);
                assert_eq!(a.as_ptr() as usize % AlignedBytes::ALIGN, 0, "len {len}");
                assert!(a.iter().all(|&b| b == 0));
                a.copy_from_slice(&data);
                assert_eq!(*a, *data);
            }
            let c = AlignedBytes::copy_of(&data);
            assert_eq!(c.as_ptr() as usize % AlignedBytes::ALIGN, 0, "len {len}");
            assert_eq!(*c, *data);
        }
    }

    #[test]
    fn refuses_what_cannot_be_allocated() {
        assert!(AlignedBytes::try_zeroed(usize::MAX - 8).is_err());
    }
}

//! Consistent Overhead Byte Stuffing, canonical form (no trailing `0x01` code
//! after a full 254-byte block), as the `cobs` crate and the original paper
//! produce it.
//!
//! Our own ~60 lines rather than a dependency because [`encode_frame`] stuffs
//! *in place*: the unstuffed frame is serialised near the front of the caller's
//! buffer and the encoder writes its output over it, so a microcontroller needs
//! one [`MAX_FRAME`] buffer, not two. The tests cross-check against the `cobs`
//! crate.
//!
//! [`encode_frame`]: crate::encode_frame
//! [`MAX_FRAME`]: crate::MAX_FRAME

use crate::ProtoError;

/// Upper bound of the COBS encoding of `n` bytes (without the `0x00`
/// delimiter): one code byte per started run of 254 bytes, at least one.
pub const fn cobs_max_encoded_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Smallest offset at which `n` input bytes can be stuffed in place.
pub(crate) const fn in_place_offset(n: usize) -> usize {
    1 + n / 254
}

/// Stuffs `buf[start..start + len]` into `buf[..returned]`.
///
/// The write position never passes the read position when
/// `start >= in_place_offset(len)`: after `k` input bytes the output holds at
/// most `1 + k + k / 254` bytes, and code-byte slots are reserved only behind
/// bytes already read.
pub(crate) fn encode_in_place(buf: &mut [u8], start: usize, len: usize) -> usize {
    debug_assert!(start >= in_place_offset(len));
    debug_assert!(start + len <= buf.len());
    let mut code_at = 0;
    let mut w = 1;
    let mut code: u8 = 1;
    for i in 0..len {
        let b = buf[start + i];
        if b == 0 {
            buf[code_at] = code;
            code_at = w;
            w += 1;
            code = 1;
        } else {
            buf[w] = b;
            w += 1;
            code += 1;
            if code == 0xFF {
                buf[code_at] = code;
                if i + 1 == len {
                    // Canonical: a full block at the very end needs no
                    // trailing empty block.
                    return w;
                }
                code_at = w;
                w += 1;
                code = 1;
            }
        }
    }
    buf[code_at] = code;
    w
}

/// COBS-encodes `src` into `dst` (no delimiter is appended) and returns the
/// encoded length, or [`ProtoError::BufferTooSmall`].
pub fn cobs_encode(src: &[u8], dst: &mut [u8]) -> Result<usize, ProtoError> {
    let start = in_place_offset(src.len());
    let needed = start + src.len();
    if dst.len() < needed {
        return Err(ProtoError::BufferTooSmall {
            needed,
            available: dst.len(),
        });
    }
    dst[start..needed].copy_from_slice(src);
    Ok(encode_in_place(dst, start, src.len()))
}

/// Decodes a COBS block (without its `0x00` delimiter) in place and returns
/// the decoded length: the data is `buf[..len]`.
///
/// Fails with [`ProtoError::Cobs`] on a zero byte inside the block or a code
/// byte that points past its end. An empty block decodes to nothing.
pub fn cobs_decode_in_place(buf: &mut [u8]) -> Result<usize, ProtoError> {
    let n = buf.len();
    let (mut r, mut w) = (0, 0);
    while r < n {
        let code = buf[r];
        if code == 0 {
            return Err(ProtoError::Cobs);
        }
        r += 1;
        let run = usize::from(code - 1);
        if run > n - r {
            return Err(ProtoError::Cobs);
        }
        if buf[r..r + run].contains(&0) {
            return Err(ProtoError::Cobs);
        }
        buf.copy_within(r..r + run, w);
        r += run;
        w += run;
        if code != 0xFF && r < n {
            buf[w] = 0;
            w += 1;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(src: &[u8]) -> ([u8; 1100], usize) {
        let mut out = [0u8; 1100];
        let n = cobs_encode(src, &mut out).unwrap();
        (out, n)
    }

    #[test]
    fn known_vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (src, want) in cases {
            let (out, n) = enc(src);
            assert_eq!(&out[..n], *want, "encode {src:02x?}");
            let mut back = out;
            let m = cobs_decode_in_place(&mut back[..n]).unwrap();
            assert_eq!(&back[..m], *src);
        }
    }

    #[test]
    fn long_runs() {
        // 254 non-zero bytes: FF + data, no trailing block.
        let src: [u8; 254] = core::array::from_fn(|i| i as u8 + 1);
        let (out, n) = enc(&src);
        assert_eq!(n, 255);
        assert_eq!(out[0], 0xFF);
        // 255 non-zero bytes: FF + 254, 02 + 1.
        let src: [u8; 255] = core::array::from_fn(|i| (i % 255) as u8 + 1);
        let (out, n) = enc(&src);
        assert_eq!(n, 257);
        assert_eq!((out[0], out[255]), (0xFF, 0x02));
        // Leading zero then 254 non-zero bytes.
        let mut src = [1u8; 255];
        src[0] = 0;
        let (out, n) = enc(&src);
        assert_eq!((n, out[0], out[1]), (256, 0x01, 0xFF));
    }

    #[test]
    fn agrees_with_reference_crate() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let len = (next() % 1000) as usize;
            let zero_rate = [0u64, 2, 50, 255][round % 4];
            let mut src = [0u8; 1000];
            for b in &mut src[..len] {
                let r = next();
                *b = if zero_rate > 0 && r % 256 < zero_rate {
                    0
                } else {
                    (r >> 8) as u8 | 1
                };
            }
            let src = &src[..len];
            let (ours, n) = enc(src);
            // Each side decodes the other's encoding. (The crate emits a
            // non-canonical trailing 0x01 after a final full block and nothing
            // for empty input, so the bytes themselves may differ there.)
            let mut decoded = [0u8; 1000];
            let k = ::cobs::decode(&ours[..n], &mut decoded).unwrap();
            assert_eq!(&decoded[..k], src, "reference decode, len {len}");
            let mut reference = [0u8; 1100];
            let m = ::cobs::encode(src, &mut reference);
            let k = cobs_decode_in_place(&mut reference[..m]).unwrap();
            assert_eq!(&reference[..k], src, "our decode, len {len}");
            assert!(n <= cobs_max_encoded_len(len));
            let mut back = ours;
            let k = cobs_decode_in_place(&mut back[..n]).unwrap();
            assert_eq!(&back[..k], src);
        }
    }

    #[test]
    fn rejects_bad_blocks() {
        assert_eq!(
            cobs_decode_in_place(&mut [0x03, 0x11]),
            Err(ProtoError::Cobs)
        );
        assert_eq!(
            cobs_decode_in_place(&mut [0x02, 0x00]),
            Err(ProtoError::Cobs)
        );
        assert_eq!(cobs_decode_in_place(&mut [0x00]), Err(ProtoError::Cobs));
        assert_eq!(cobs_decode_in_place(&mut []), Ok(0));
        let mut small = [0u8; 3];
        assert!(matches!(
            cobs_encode(&[1, 2, 3], &mut small),
            Err(ProtoError::BufferTooSmall {
                needed: 4,
                available: 3
            })
        ));
    }
}

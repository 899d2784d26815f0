//! Decoded images: 8-bit pixels, interleaved (HWC), gray or RGB.

use std::path::Path;

use crate::DataError;

/// An 8-bit image as stored: `channels` is 1 (gray) or 3 (RGB), pixels
/// interleaved row by row (HWC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImage {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl RawImage {
    pub fn new(height: usize, width: usize, channels: usize, pixels: Vec<u8>) -> RawImage {
        debug_assert_eq!(pixels.len(), height * width * channels);
        RawImage {
            height,
            width,
            channels,
            pixels,
        }
    }

    /// "32x32 RGB", for messages.
    pub fn describe(&self) -> String {
        let kind = match self.channels {
            1 => "gray",
            3 => "RGB",
            _ => "?",
        };
        format!("{}x{} {kind}", self.height, self.width)
    }

    /// Decodes a PNG, JPEG or BMP file (any colour type: gray and gray+alpha
    /// become gray, everything else RGB, alpha dropped; 16-bit samples are
    /// reduced to 8 as PIL does).
    pub fn decode_file(path: &Path) -> Result<RawImage, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Self::decode(&bytes).map_err(|reason| DataError::format(path, reason))
    }

    pub fn decode(bytes: &[u8]) -> Result<RawImage, String> {
        let img =
            ::image::load_from_memory(bytes).map_err(|e| format!("not a readable image: {e}"))?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let gray = matches!(
            img.color(),
            ::image::ColorType::L8
                | ::image::ColorType::La8
                | ::image::ColorType::L16
                | ::image::ColorType::La16
        );
        Ok(if gray {
            RawImage::new(h, w, 1, img.into_luma8().into_raw())
        } else {
            RawImage::new(h, w, 3, img.into_rgb8().into_raw())
        })
    }
}

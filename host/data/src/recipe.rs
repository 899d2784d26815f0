//! The preprocessing recipe: how an image becomes a model's input tensor, the
//! way PIL and torchvision do it (`convert`, `Resize`, `CenterCrop`,
//! `ToTensor`, `Normalize`), so a model sees on a device what it saw in
//! training.

use serde::{Deserialize, Serialize};

use crate::RawImage;

/// Colour channels the model takes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
    Gray,
}

impl ChannelOrder {
    pub fn count(self) -> usize {
        match self {
            ChannelOrder::Gray => 1,
            _ => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChannelOrder::Rgb => "rgb",
            ChannelOrder::Bgr => "bgr",
            ChannelOrder::Gray => "gray",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelOrder> {
        match s.to_ascii_lowercase().as_str() {
            "rgb" => Some(ChannelOrder::Rgb),
            "bgr" => Some(ChannelOrder::Bgr),
            "gray" | "grey" | "l" => Some(ChannelOrder::Gray),
            _ => None,
        }
    }
}

/// The model input's memory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorLayout {
    #[default]
    Nchw,
    Nhwc,
}

impl TensorLayout {
    pub fn parse(s: &str) -> Option<TensorLayout> {
        match s.to_ascii_lowercase().as_str() {
            "nchw" => Some(TensorLayout::Nchw),
            "nhwc" => Some(TensorLayout::Nhwc),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorLayout::Nchw => "NCHW",
            TensorLayout::Nhwc => "NHWC",
        }
    }
}

/// A resize as torchvision's `Resize` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Resize {
    /// The shorter side to this many pixels, the aspect ratio kept (`Resize(256)`).
    Shorter(u32),
    /// Exactly `[height, width]` (`Resize((h, w))`).
    Exact([u32; 2]),
}

/// A centre crop: one number for a square, or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Crop {
    Square(u32),
    Exact([u32; 2]),
}

impl Crop {
    fn size(self) -> (usize, usize) {
        match self {
            Crop::Square(s) => (s as usize, s as usize),
            Crop::Exact([h, w]) => (h as usize, w as usize),
        }
    }
}

fn default_scale() -> f32 {
    1.0 / 255.0
}

/// How images become input tensors. Every field has a default, so a TOML file
/// gives only what differs:
///
/// ```toml
/// resize = 256            # shorter side; or [224, 224] for exactly H x W
/// crop = 224              # centre crop; or [h, w]
/// channels = "rgb"        # "rgb", "bgr" or "gray"
/// scale = 0.00392156862   # pixel * scale (default 1/255)
/// mean = [0.485, 0.456, 0.406]
/// std = [0.229, 0.224, 0.225]
/// layout = "nchw"         # or "nhwc" (Keras)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<Crop>,
    pub channels: ChannelOrder,
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Per channel (or one for all); empty: 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f32>,
    /// Per channel (or one for all); empty: 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f32>,
    #[serde(default)]
    pub layout: TensorLayout,
}

/// A recipe that cannot serve a model, or a bad recipe file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecipeError {
    #[error("{0}")]
    Mismatch(String),
    #[error("preprocessing recipe: {0}")]
    Invalid(String),
    #[error("unknown preset `{0}`: edgefit has imagenet, cifar10 and fmnist")]
    UnknownPreset(String),
}

impl Recipe {
    /// Pixels / 255 in the given channels, nothing else.
    pub fn plain(channels: ChannelOrder) -> Recipe {
        Recipe {
            resize: None,
            crop: None,
            channels,
            scale: default_scale(),
            mean: vec![],
            std: vec![],
            layout: TensorLayout::Nchw,
        }
    }

    /// What a model of `input_shape` most likely takes with no recipe given:
    /// its channel count (1: gray, 3: RGB), pixels / 255, and NHWC where the
    /// last dimension is the channels ([1, H, W, 1|3], as Keras exports).
    pub fn default_for(input_shape: &[usize]) -> Recipe {
        let nhwc =
            matches!(input_shape, [_, h, _, c] if (*c == 1 || *c == 3) && *h != 1 && *h != 3);
        let c = match (input_shape, nhwc) {
            ([_, _, _, c], true) => *c,
            ([_, c, _, _], false) => *c,
            _ => 3,
        };
        Recipe {
            layout: if nhwc {
                TensorLayout::Nhwc
            } else {
                TensorLayout::Nchw
            },
            ..Recipe::plain(if c == 1 {
                ChannelOrder::Gray
            } else {
                ChannelOrder::Rgb
            })
        }
    }

    /// `imagenet` (torchvision's: resize 256, centre crop 224, RGB, its mean
    /// and std), `cifar10` (32x32 RGB / 255), `fmnist` (28x28 gray / 255, the
    /// bundled models').
    pub fn preset(name: &str) -> Result<Recipe, RecipeError> {
        match name {
            "imagenet" => Ok(Recipe {
                resize: Some(Resize::Shorter(256)),
                crop: Some(Crop::Square(224)),
                mean: vec![0.485, 0.456, 0.406],
                std: vec![0.229, 0.224, 0.225],
                ..Recipe::plain(ChannelOrder::Rgb)
            }),
            "cifar10" => Ok(Recipe::plain(ChannelOrder::Rgb)),
            "fmnist" => Ok(Recipe::plain(ChannelOrder::Gray)),
            other => Err(RecipeError::UnknownPreset(other.to_owned())),
        }
    }

    /// Reads a recipe from TOML text (see [`Recipe`]).
    pub fn from_toml(text: &str) -> Result<Recipe, RecipeError> {
        let r: Recipe = toml::from_str(text).map_err(|e| RecipeError::Invalid(e.to_string()))?;
        r.validate()?;
        Ok(r)
    }

    /// The recipe as TOML, as [`Recipe::from_toml`] reads it.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        match self.resize {
            Some(Resize::Shorter(n)) => s += &format!("resize = {n}\n"),
            Some(Resize::Exact([h, w])) => s += &format!("resize = [{h}, {w}]\n"),
            None => {}
        }
        match self.crop {
            Some(Crop::Square(n)) => s += &format!("crop = {n}\n"),
            Some(Crop::Exact([h, w])) => s += &format!("crop = [{h}, {w}]\n"),
            None => {}
        }
        s += &format!("channels = \"{}\"\n", self.channels.name());
        s += &format!("scale = {:?}\n", self.scale);
        let list = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{x:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.mean.is_empty() {
            s += &format!("mean = [{}]\n", list(&self.mean));
        }
        if !self.std.is_empty() {
            s += &format!("std = [{}]\n", list(&self.std));
        }
        s += &format!("layout = \"{}\"\n", self.layout.name().to_ascii_lowercase());
        s
    }

    /// The recipe as a plan's metadata (a `[preprocess]` TOML table; see
    /// docs/plan-format.md, "Metadata trailer").
    pub fn to_plan_metadata(&self) -> Vec<u8> {
        format!("[preprocess]\n{}", self.to_toml()).into_bytes()
    }

    /// The recipe a plan's metadata records, if any.
    pub fn from_plan_metadata(metadata: &[u8]) -> Result<Option<Recipe>, RecipeError> {
        #[derive(Deserialize)]
        struct Metadata {
            preprocess: Option<Recipe>,
        }
        let text = std::str::from_utf8(metadata)
            .map_err(|_| RecipeError::Invalid("plan metadata is not UTF-8".into()))?;
        let m: Metadata = toml::from_str(text).map_err(|e| RecipeError::Invalid(e.to_string()))?;
        if let Some(r) = &m.preprocess {
            r.validate()?;
        }
        Ok(m.preprocess)
    }

    /// One line: "resize 256, crop 224, RGB, x/255, mean [..], std [..], NCHW".
    pub fn describe(&self) -> String {
        let mut parts = vec![];
        match self.resize {
            Some(Resize::Shorter(n)) => parts.push(format!("resize shorter side to {n}")),
            Some(Resize::Exact([h, w])) => parts.push(format!("resize to {h}x{w}")),
            None => {}
        }
        if let Some(c) = self.crop {
            let (h, w) = c.size();
            parts.push(format!("centre crop {h}x{w}"));
        }
        parts.push(self.channels.name().to_ascii_uppercase());
        match self.divisor() {
            Some(d) => parts.push(format!("x/{d}")),
            None => parts.push(format!("x*{}", self.scale)),
        }
        if !self.mean.is_empty() {
            parts.push(format!("mean {:?}", self.mean));
        }
        if !self.std.is_empty() {
            parts.push(format!("std {:?}", self.std));
        }
        parts.push(self.layout.name().to_owned());
        parts.join(", ")
    }

    fn validate(&self) -> Result<(), RecipeError> {
        let c = self.channels.count();
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if !(v.is_empty() || v.len() == 1 || v.len() == c) {
                return Err(RecipeError::Invalid(format!(
                    "{name} has {} values; {} channels take 1 or {c}",
                    v.len(),
                    self.channels.name()
                )));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(RecipeError::Invalid(format!("{name} {v:?} is not finite")));
            }
        }
        if self.std.contains(&0.0) {
            return Err(RecipeError::Invalid(format!(
                "std {:?} holds a zero",
                self.std
            )));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(RecipeError::Invalid(format!(
                "scale {} must be positive",
                self.scale
            )));
        }
        let zero = matches!(self.resize, Some(Resize::Shorter(0)))
            || matches!(self.resize, Some(Resize::Exact([h, w])) if h == 0 || w == 0)
            || self
                .crop
                .is_some_and(|c| c.size().0 == 0 || c.size().1 == 0);
        if zero {
            return Err(RecipeError::Invalid("a resize or crop of 0 pixels".into()));
        }
        Ok(())
    }

    /// The (channels, height, width) a model of `input_shape` takes under
    /// this recipe's layout.
    fn model_chw(&self, input_shape: &[usize]) -> Result<(usize, usize, usize), RecipeError> {
        match (input_shape, self.layout) {
            ([1, c, h, w], TensorLayout::Nchw) => Ok((*c, *h, *w)),
            ([1, h, w, c], TensorLayout::Nhwc) => Ok((*c, *h, *w)),
            _ => Err(RecipeError::Mismatch(format!(
                "the model takes {input_shape:?}, not a single {} image",
                self.layout.name()
            ))),
        }
    }

    /// Checks, before anything runs, that the recipe gives tensors of the
    /// model's input shape: channel count, and H x W where the recipe fixes
    /// it (a crop or an exact resize). Returns the (channels, height, width)
    /// every image must become.
    pub fn check(&self, input_shape: &[usize]) -> Result<(usize, usize, usize), RecipeError> {
        self.validate()?;
        let (c, h, w) = self.model_chw(input_shape)?;
        if self.channels.count() != c {
            return Err(RecipeError::Mismatch(format!(
                "the recipe gives {} {} channel(s) but the model's input {input_shape:?} ({}) has {c}",
                self.channels.count(),
                self.channels.name(),
                self.layout.name()
            )));
        }
        let fixed = match (self.crop, self.resize) {
            (Some(crop), _) => Some(crop.size()),
            (None, Some(Resize::Exact([h, w]))) => Some((h as usize, w as usize)),
            _ => None,
        };
        if let Some((rh, rw)) = fixed {
            if (rh, rw) != (h, w) {
                return Err(RecipeError::Mismatch(format!(
                    "the recipe gives {rh}x{rw} images but the model's input {input_shape:?} \
                     takes {h}x{w}"
                )));
            }
        }
        Ok((c, h, w))
    }

    /// The integer that `scale` is one over (255 for 1/255), so pixels are
    /// divided as torchvision's `ToTensor` does, bit for bit (the engine's
    /// rule, which devices apply too).
    fn divisor(&self) -> Option<u32> {
        edgefit_engine::input::divisor_for(self.scale)
    }

    /// The image as the model's input tensor (`input_shape`, checked by
    /// [`Recipe::check`]). An image whose size does not give the model's
    /// H x W is an error naming both.
    pub fn apply(&self, image: &RawImage, input_shape: &[usize]) -> Result<Vec<f32>, String> {
        let (c, h, w) = self.check(input_shape).map_err(|e| e.to_string())?;
        let img = self.pixels(image, input_shape)?;
        let per = |v: &[f32], i: usize, default: f32| match v.len() {
            0 => default,
            1 => v[0],
            _ => v[i],
        };
        let divisor = self.divisor().map(|d| d as f32);
        let mut out = vec![0f32; c * h * w];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let p = img.pixels[(y * w + x) * c + ch] as f32;
                    let v = edgefit_engine::input::normalize(
                        p,
                        divisor,
                        self.scale,
                        per(&self.mean, ch, 0.0),
                        per(&self.std, ch, 1.0),
                    );
                    let at = match self.layout {
                        TensorLayout::Nchw => (ch * h + y) * w + x,
                        TensorLayout::Nhwc => (y * w + x) * c + ch,
                    };
                    out[at] = v;
                }
            }
        }
        Ok(out)
    }

    /// The recipe's geometry only: channels, resize and crop, giving the
    /// model's H x W x C as 8-bit pixels (HWC) — what a device that applies
    /// the arithmetic itself receives (the MLPerf Tiny runner's raw images).
    pub fn pixels(&self, image: &RawImage, input_shape: &[usize]) -> Result<RawImage, String> {
        let (_, h, w) = self.check(input_shape).map_err(|e| e.to_string())?;
        let img = convert_channels(image, self.channels);
        let img = match self.resize {
            None => img,
            Some(Resize::Exact([rh, rw])) => resize(&img, rh as usize, rw as usize),
            Some(Resize::Shorter(s)) => {
                let s = s as usize;
                // torchvision: the long side is int(s * long / short).
                let (rh, rw) = if img.height <= img.width {
                    (s, s * img.width / img.height.max(1))
                } else {
                    (s * img.height / img.width.max(1), s)
                };
                resize(&img, rh, rw)
            }
        };
        let img = match self.crop {
            None => img,
            Some(crop) => {
                let (ch, cw) = crop.size();
                if ch > img.height || cw > img.width {
                    return Err(format!(
                        "a {ch}x{cw} centre crop of a {}x{} image (after resizing)",
                        img.height, img.width
                    ));
                }
                centre_crop(&img, ch, cw)
            }
        };
        if (img.height, img.width) != (h, w) {
            return Err(format!(
                "it becomes {}x{} but the model takes {h}x{w}: give --resize/--crop",
                img.height, img.width
            ));
        }
        Ok(img)
    }
}

/// Gray <-> RGB as PIL's `convert` does (ITU-R 601-2 luma, 16-bit fixed
/// point), then BGR order where asked.
fn convert_channels(img: &RawImage, to: ChannelOrder) -> RawImage {
    let px = &img.pixels;
    let pixels = match (img.channels, to) {
        (1, ChannelOrder::Gray) | (3, ChannelOrder::Rgb) => return img.clone(),
        (3, ChannelOrder::Gray) => px
            .chunks_exact(3)
            .map(|p| {
                ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16)
                    as u8
            })
            .collect(),
        (1, _) => px.iter().flat_map(|&g| [g, g, g]).collect(),
        (_, _) => px
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
    };
    RawImage::new(img.height, img.width, to.count(), pixels)
}

/// torchvision's `CenterCrop`: offsets `round((size - crop) / 2)`, Python's
/// rounding (half to even).
fn centre_crop(img: &RawImage, ch: usize, cw: usize) -> RawImage {
    let offset = |size: usize, crop: usize| {
        let twice = size - crop; // offset = twice / 2, half to even
        let (q, r) = (twice / 2, twice % 2);
        if r == 1 && q % 2 == 1 {
            q + 1
        } else {
            q
        }
    };
    let (top, left) = (offset(img.height, ch), offset(img.width, cw));
    let c = img.channels;
    let mut pixels = Vec::with_capacity(ch * cw * c);
    for y in top..top + ch {
        let row = (y * img.width + left) * c;
        pixels.extend_from_slice(&img.pixels[row..row + cw * c]);
    }
    RawImage::new(ch, cw, c, pixels)
}

/// PIL's bilinear resampling with antialiasing (`Image.resize(...,
/// BILINEAR)`, what torchvision's `Resize` runs on PIL images): a triangle
/// filter widened by the downscale factor, 22-bit fixed-point coefficients,
/// the horizontal pass then the vertical, each rounded to 8 bits.
pub(crate) fn resize(img: &RawImage, out_h: usize, out_w: usize) -> RawImage {
    let mut cur = img.clone();
    if out_w != cur.width {
        cur = resample(&cur, out_w, true);
    }
    if out_h != cur.height {
        cur = resample(&cur, out_h, false);
    }
    cur
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output index: the first input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear: support 1
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|w| *w /= ww);
            }
            let fixed = k
                .iter()
                .map(|&w| {
                    let v = w * (1u32 << PRECISION_BITS) as f64;
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }).trunc() as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn resample(img: &RawImage, out_size: usize, horizontal: bool) -> RawImage {
    let c = img.channels;
    let (h, w) = (img.height, img.width);
    let in_size = if horizontal { w } else { h };
    let coeffs = coefficients(in_size, out_size);
    let (oh, ow) = if horizontal {
        (h, out_size)
    } else {
        (out_size, w)
    };
    let mut out = vec![0u8; oh * ow * c];
    let round = 1i64 << (PRECISION_BITS - 1);
    for y in 0..oh {
        for x in 0..ow {
            let (first, k) = if horizontal { &coeffs[x] } else { &coeffs[y] };
            for ch in 0..c {
                let mut acc = round;
                for (i, &kw) in k.iter().enumerate() {
                    let (sy, sx) = if horizontal {
                        (y, first + i)
                    } else {
                        (first + i, x)
                    };
                    acc += img.pixels[(sy * w + sx) * c + ch] as i64 * kw as i64;
                }
                out[(y * ow + x) * c + ch] = (acc >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
    RawImage::new(oh, ow, c, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize, c: usize) -> RawImage {
        let pixels = (0..h * w * c).map(|i| (i * 37 % 256) as u8).collect();
        RawImage::new(h, w, c, pixels)
    }

    #[test]
    fn presets_and_toml_round_trip() {
        for name in ["imagenet", "cifar10", "fmnist"] {
            let r = Recipe::preset(name).unwrap();
            assert_eq!(Recipe::from_toml(&r.to_toml()).unwrap(), r, "{name}");
        }
        assert!(matches!(
            Recipe::preset("coco"),
            Err(RecipeError::UnknownPreset(_))
        ));
        let r = Recipe::from_toml(
            "channels = \"bgr\"\nresize = [40, 30]\ncrop = [32, 24]\nlayout = \"nhwc\"\n",
        )
        .unwrap();
        assert_eq!(r.resize, Some(Resize::Exact([40, 30])));
        assert_eq!(r.crop, Some(Crop::Exact([32, 24])));
        assert!(Recipe::from_toml("channels = \"rgb\"\nmean = [1, 2]\n").is_err());
        assert!(Recipe::from_toml("channels = \"rgb\"\nstd = [0]\n").is_err());
        assert!(Recipe::from_toml("channels = \"rgb\"\nsize = 3\n").is_err());
        let r = Recipe::preset("imagenet").unwrap();
        assert_eq!(
            Recipe::from_plan_metadata(&r.to_plan_metadata()).unwrap(),
            Some(r)
        );
        assert_eq!(
            Recipe::from_plan_metadata(b"[other]\nx = 1\n").unwrap(),
            None
        );
    }

    #[test]
    fn check_names_both_shapes() {
        let r = Recipe::preset("imagenet").unwrap();
        assert_eq!(r.check(&[1, 3, 224, 224]).unwrap(), (3, 224, 224));
        let e = r.check(&[1, 1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("3 rgb") && e.contains("[1, 1, 28, 28]"), "{e}");
        let e = r.check(&[1, 3, 32, 32]).unwrap_err().to_string();
        assert!(e.contains("224x224") && e.contains("32x32"), "{e}");
        assert_eq!(
            Recipe::default_for(&[1, 32, 32, 3]).layout,
            TensorLayout::Nhwc
        );
        assert_eq!(
            Recipe::default_for(&[1, 1, 28, 28]).channels,
            ChannelOrder::Gray
        );
    }

    #[test]
    fn layouts_channels_and_normalisation() {
        let img = RawImage::new(1, 2, 3, vec![10, 20, 30, 40, 50, 60]);
        let mut r = Recipe::plain(ChannelOrder::Rgb);
        r.mean = vec![0.5];
        r.std = vec![0.25];
        let nchw = r.apply(&img, &[1, 3, 1, 2]).unwrap();
        let f = |p: u8| (p as f32 / 255.0 - 0.5) / 0.25;
        assert_eq!(nchw, vec![f(10), f(40), f(20), f(50), f(30), f(60)]);
        r.layout = TensorLayout::Nhwc;
        assert_eq!(
            r.apply(&img, &[1, 1, 2, 3]).unwrap(),
            vec![f(10), f(20), f(30), f(40), f(50), f(60)]
        );
        r.channels = ChannelOrder::Bgr;
        assert_eq!(
            r.apply(&img, &[1, 1, 2, 3]).unwrap()[..3],
            [f(30), f(20), f(10)]
        );
        // PIL's luma: (10*19595 + 20*38470 + 30*7471 + 32768) >> 16 = 18.
        let gray = Recipe::plain(ChannelOrder::Gray)
            .apply(&img, &[1, 1, 1, 2])
            .unwrap();
        assert_eq!(gray[0], 18.0 / 255.0);
    }

    #[test]
    fn centre_crop_rounds_half_to_even_as_torchvision() {
        // (7 - 4) / 2 = 1.5 -> 2; (5 - 2) / 2 = 1.5 -> 2; (6 - 3) / 2 = 1.5 -> 2; (9 - 4) / 2 = 2.5 -> 2.
        let img = ramp(7, 9, 1);
        let c = centre_crop(&img, 4, 4);
        assert_eq!(c.pixels[0], img.pixels[2 * 9 + 2]);
        let img = ramp(5, 5, 1);
        assert_eq!(centre_crop(&img, 2, 2).pixels[0], img.pixels[2 * 5 + 2]);
    }

    #[test]
    fn resize_keeps_constant_images_and_averages_when_halving() {
        let flat = RawImage::new(10, 14, 3, vec![77; 10 * 14 * 3]);
        let r = resize(&flat, 5, 9);
        assert!(r.pixels.iter().all(|&p| p == 77));
        // Halving a 2-pixel pattern: the triangle filter widened to 4 taps.
        let img = RawImage::new(1, 4, 1, vec![0, 100, 200, 100]);
        let r = resize(&img, 1, 2);
        assert_eq!((r.width, r.height), (2, 1));
        // Pillow 12 gives [71, 143] (`Image.resize((2, 1), BILINEAR)`).
        assert_eq!(r.pixels, vec![71, 143]);
        // A 60x90 RGB ramp to 40x60, against Pillow's pixels and sum.
        let r = resize(&ramp(60, 90, 3), 40, 60);
        assert_eq!(
            r.pixels[..12],
            [44, 81, 118, 171, 66, 103, 132, 141, 92, 106, 143, 94]
        );
        assert_eq!(r.pixels[(20 * 60 + 30) * 3..][..3], [109, 146, 155]);
        assert_eq!(r.pixels.iter().map(|&p| p as u64).sum::<u64>(), 917_918);
    }

    #[test]
    fn shorter_side_resize_then_crop_gives_the_model_size() {
        let mut r = Recipe::preset("imagenet").unwrap();
        r.resize = Some(Resize::Shorter(40));
        r.crop = Some(Crop::Square(32));
        let img = ramp(60, 90, 3);
        let t = r.apply(&img, &[1, 3, 32, 32]).unwrap();
        assert_eq!(t.len(), 3 * 32 * 32);
        let small = ramp(20, 20, 3);
        let no_resize = Recipe::plain(ChannelOrder::Rgb);
        let e = no_resize.apply(&small, &[1, 3, 32, 32]).unwrap_err();
        assert!(e.contains("20x20") && e.contains("32x32"), "{e}");
    }
}

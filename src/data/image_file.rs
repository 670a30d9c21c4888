//! Image files (JPEG, PNG) turned into network inputs: decoding with memory limits, the
//! torchvision evaluation transform (resize, center crop, normalise), grey or RGB.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;

use super::{DataError, DatasetKind};

/// ImageNet per-channel mean (RGB, `[0, 1]` units), torchvision's `Normalize` constants.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation (RGB, `[0, 1]` units).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Largest width or height of an image file xbn decodes, pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory the decoder of one image may allocate (bytes).
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

/// Decodes an image file (JPEG or PNG, told by its content), refusing, before anything is
/// allocated, sizes over [`MAX_IMAGE_SIDE`] and decodes that would allocate more than the
/// file can justify (256 KiB + 512 bytes per file byte, at most [`MAX_IMAGE_ALLOC`]).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, [`DataError::Malformed`] when it is not
/// a decodable image or is too large.
pub fn decode_image(path: &Path) -> Result<image::DynamicImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let malformed = |e: image::ImageError| DataError::Malformed {
        path: path.to_path_buf(),
        reason: format!("not a decodable JPEG/PNG image ({e})"),
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    // No decode larger than the file can justify: PNG's deflate expands at most about
    // 1,000-fold, JPEG far less.
    limits.max_alloc = Some(MAX_IMAGE_ALLOC.min((256 << 10) + 512 * bytes.len() as u64));
    reader.limits(limits);
    reader.decode().map_err(malformed)
}

/// How an image file becomes a network input `[C, crop, crop]`: converted to grey (`C = 1`,
/// PIL's `convert("L")`, ITU-R 601-2 luma, as torchvision's `Grayscale`) or RGB (`C = 3`),
/// resized so the shorter side is `resize` pixels (bilinear with antialiasing, as
/// torchvision's `Resize` on a PIL image), center-cropped to `crop × crop`, scaled to
/// `[0, 1]` and normalised per channel, `(x − mean_c) / std_c`.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessing {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Shorter side after resizing, pixels.
    pub resize: u32,
    /// Side of the center crop, pixels (at most `resize`).
    pub crop: u32,
    /// Per-channel mean, `[0, 1]` units (one value per channel).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, `[0, 1]` units.
    pub std: Vec<f32>,
}

impl Preprocessing {
    /// The ImageNet evaluation transform: RGB, `Resize(resize)`, `CenterCrop(crop)`,
    /// [`IMAGENET_MEAN`] / [`IMAGENET_STD`] (torchvision: 256 and 224).
    pub fn imagenet(resize: u32, crop: u32) -> Self {
        Self {
            channels: 3,
            resize,
            crop,
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }
    }

    /// The input of a network trained on `kind`: its channels, its image size (the shorter
    /// side resized to it, then a center crop of it) and its mean/std.
    pub fn for_dataset(kind: DatasetKind) -> Self {
        let [c, h, _] = kind.image_shape();
        Self {
            channels: c,
            resize: h as u32,
            crop: h as u32,
            mean: kind.mean().to_vec(),
            std: kind.std().to_vec(),
        }
    }

    /// The pixels `[C, crop, crop]` of one image file, channel-major.
    ///
    /// # Errors
    /// [`DataError::Io`] when the file cannot be read, [`DataError::Malformed`] when it is
    /// not a decodable image, its aspect ratio is too extreme, or the settings are invalid
    /// (`crop` not in `1..=resize`, channels not 1 or 3, mean/std not one per channel).
    pub fn apply(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        let (resize, crop, c) = (self.resize, self.crop, self.channels);
        let bad = |reason: String| DataError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        if crop == 0 || crop > resize {
            return Err(bad(format!(
                "center crop {crop} must be between 1 and the resize {resize}"
            )));
        }
        if !(c == 1 || c == 3) || self.mean.len() != c || self.std.len() != c {
            return Err(bad(format!(
                "{c} channels with {} mean and {} std values: need 1 or 3 channels, one value each",
                self.mean.len(),
                self.std.len()
            )));
        }
        let img = decode_image(path)?.to_rgb8();
        let img = match c {
            1 => image::DynamicImage::ImageLuma8(luma_601(&img)),
            _ => image::DynamicImage::ImageRgb8(img),
        };
        let (w, h) = (img.width(), img.height());
        // Shorter side to `resize`, the other scaled to keep the aspect ratio (torchvision
        // truncates the longer side's size).
        let (nw, nh) = if w <= h {
            (resize as u64, resize as u64 * h as u64 / w.max(1) as u64)
        } else {
            (resize as u64 * w as u64 / h.max(1) as u64, resize as u64)
        };
        if nw.max(nh) > MAX_IMAGE_SIDE as u64 {
            return Err(bad(format!(
                "a {w}×{h} image resized to {resize} pixels on its shorter side would be \
                 {nw}×{nh}, over {MAX_IMAGE_SIDE} pixels on a side; crop it to a less extreme aspect ratio first"
            )));
        }
        let (nw, nh) = ((nw as u32).max(crop), (nh as u32).max(crop));
        let resized = img.resize_exact(nw, nh, FilterType::Triangle);
        let bytes = match c {
            1 => resized.to_luma8().into_raw(),
            _ => resized.to_rgb8().into_raw(),
        };
        // torchvision's center crop: offsets round((size - crop) / 2).
        let left = ((nw - crop) as f64 / 2.0).round() as usize;
        let top = ((nh - crop) as f64 / 2.0).round() as usize;
        let (k, width) = (crop as usize, nw as usize);
        let mut out = vec![0f32; c * k * k];
        for y in 0..k {
            for x in 0..k {
                let at = ((top + y) * width + left + x) * c;
                for ch in 0..c {
                    out[ch * k * k + y * k + x] =
                        (bytes[at + ch] as f32 / 255.0 - self.mean[ch]) / self.std[ch];
                }
            }
        }
        Ok(out)
    }

    /// [`Preprocessing::apply`] to several files, as one batch `[N, C, crop, crop]` on
    /// `device`.
    ///
    /// # Errors
    /// The first file's error.
    pub fn batch(&self, paths: &[&Path], device: &Device) -> Result<Tensor<4>, DataError> {
        let mut data = Vec::new();
        for p in paths {
            data.extend(self.apply(p)?);
        }
        let (c, k) = (self.channels, self.crop as usize);
        Ok(Tensor::from_data(
            TensorData::new(data, [paths.len(), c, k, k]),
            device,
        ))
    }
}

/// Grey levels as PIL's `convert("L")`: `L = (299 R + 587 G + 114 B) / 1000`, rounded.
fn luma_601(rgb: &image::RgbImage) -> image::GrayImage {
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let l = (299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000;
        image::Luma([l as u8])
    })
}

/// The ImageNet evaluation transform of an image file ([`Preprocessing::imagenet`]):
/// the pixels `[3, crop, crop]`, channel-major.
///
/// # Errors
/// See [`Preprocessing::apply`].
pub fn preprocess(path: &Path, resize: u32, crop: u32) -> Result<Vec<f32>, DataError> {
    Preprocessing::imagenet(resize, crop).apply(path)
}

/// [`preprocess`] of several files as one batch `[N, 3, crop, crop]` on `device`.
///
/// # Errors
/// The first file's error.
pub fn image_batch(
    paths: &[&Path],
    resize: u32,
    crop: u32,
    device: &Device,
) -> Result<Tensor<4>, DataError> {
    Preprocessing::imagenet(resize, crop).batch(paths, device)
}

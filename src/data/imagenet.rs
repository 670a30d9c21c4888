//! ImageNet-style preprocessing of image files (JPEG, PNG).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;

use super::DataError;

/// ImageNet per-channel mean (RGB, `[0, 1]` units), torchvision's `Normalize` constants.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation (RGB, `[0, 1]` units).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The standard evaluation transform of an image file: decode (any JPEG/PNG, converted to
/// RGB), resize so the shorter side is `resize` pixels (bilinear with antialiasing, as
/// torchvision's `Resize(256)` on a PIL image), center crop `crop × crop`, scale to
/// `[0, 1]` and normalise with [`IMAGENET_MEAN`] / [`IMAGENET_STD`].
///
/// Returns the pixels `[3, crop, crop]`, channel-major.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, [`DataError::Malformed`] when it is not
/// a decodable image or `crop > resize`.
pub fn preprocess(path: &Path, resize: u32, crop: u32) -> Result<Vec<f32>, DataError> {
    if crop == 0 || crop > resize {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!("center crop {crop} must be between 1 and the resize {resize}"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!("not a decodable JPEG/PNG image ({e})"),
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    // Shorter side to `resize`, the other scaled to keep the aspect ratio (torchvision
    // truncates the longer side's size).
    let (nw, nh) = if w <= h {
        (resize, (resize as u64 * h as u64 / w.max(1) as u64) as u32)
    } else {
        ((resize as u64 * w as u64 / h.max(1) as u64) as u32, resize)
    };
    let resized = image::imageops::resize(&img, nw.max(crop), nh.max(crop), FilterType::Triangle);
    let (rw, rh) = resized.dimensions();
    // torchvision's center crop: offsets round((size - crop) / 2).
    let left = ((rw - crop) as f64 / 2.0).round() as u32;
    let top = ((rh - crop) as f64 / 2.0).round() as u32;
    let c = crop as usize;
    let mut out = vec![0f32; 3 * c * c];
    for y in 0..c {
        for x in 0..c {
            let p = resized.get_pixel(left + x as u32, top + y as u32);
            for ch in 0..3 {
                out[ch * c * c + y * c + x] =
                    (p[ch] as f32 / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
            }
        }
    }
    Ok(out)
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
    let mut data = Vec::new();
    for p in paths {
        data.extend(preprocess(p, resize, crop)?);
    }
    let c = crop as usize;
    Ok(Tensor::from_data(
        TensorData::new(data, [paths.len(), 3, c, c]),
        device,
    ))
}

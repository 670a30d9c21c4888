//! Turning image items into normalised, optionally augmented tensor batches.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{DataError, DatasetKind, ImageDataset, ImageItem};

/// Training-time augmentation, applied to the raw bytes before normalisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Random crop of the original size from the image zero-padded by this many pixels on
    /// each side (torchvision `RandomCrop(size, padding)`, fill 0); 0 disables it.
    pub crop_padding: usize,
    /// Mirror left–right with probability 0.5 (`RandomHorizontalFlip`).
    pub horizontal_flip: bool,
}

impl Augmentation {
    /// The standard recipe: 4-pixel-padded random crop for every dataset, plus horizontal
    /// flips for CIFAR (digits and the 28×28 Fashion-MNIST set are not flipped).
    pub fn standard(kind: DatasetKind) -> Self {
        Self {
            crop_padding: 4,
            horizontal_flip: matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100),
        }
    }
}

/// A batch of images and labels.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// Normalised images `[N, C, H, W]`, `(x / 255 − mean_c) / std_c`.
    pub images: Tensor<4>,
    /// Class indices `[N]`.
    pub targets: Tensor<1, Int>,
    /// Receives the training loss computed on this batch (set by [`train_loader`] when a
    /// run watches its loss; `None` otherwise). The training step of
    /// [`impl_classifier_steps!`](crate::impl_classifier_steps) calls it.
    pub loss_watch: Option<LossWatch>,
}

/// A callback that receives the loss `[1]` of every training step: `xbn::train` uses one
/// to stop a run as soon as its loss is no longer finite.
#[derive(Clone)]
pub struct LossWatch(Arc<dyn Fn(&Tensor<1>) + Send + Sync>);

impl LossWatch {
    /// A watch calling `f` with each loss.
    pub fn new(f: impl Fn(&Tensor<1>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands one step's loss to the watch.
    pub fn observe(&self, loss: &Tensor<1>) {
        (self.0)(loss)
    }
}

impl std::fmt::Debug for LossWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LossWatch")
    }
}

/// Builds [`ImageBatch`]es: per-channel mean/std normalisation and, for training, seeded
/// augmentation.
///
/// The random state lives in the batcher and is advanced batch after batch, so a loader
/// with at most one worker produces the same augmented batches for the same seed.
#[derive(Debug)]
pub struct ImageBatcher {
    shape: [usize; 3],
    /// `lut[c][v]` = normalised value of byte `v` in channel `c`.
    lut: Vec<[f32; 256]>,
    augmentation: Option<Augmentation>,
    rng: Mutex<StdRng>,
    loss_watch: Option<LossWatch>,
}

impl ImageBatcher {
    /// A batcher for images `shape = [C, H, W]` with per-channel `mean` and `std` (in
    /// `[0, 1]` units; one value is broadcast to every channel), as torchvision's
    /// `Normalize(mean, std)` after `ToTensor()`.
    ///
    /// # Errors
    /// [`DataError::InvalidNormalization`] when `mean`/`std` have neither 1 nor `C` values
    /// or a value is not finite or a std is not positive.
    pub fn new(shape: [usize; 3], mean: &[f32], std: &[f32]) -> Result<Self, DataError> {
        let c = shape[0];
        let counts_ok = |v: &[f32]| v.len() == 1 || v.len() == c;
        if !counts_ok(mean)
            || !counts_ok(std)
            || mean.iter().any(|m| !m.is_finite())
            || std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(DataError::InvalidNormalization {
                channels: c,
                mean: mean.to_vec(),
                std: std.to_vec(),
            });
        }
        let lut = (0..c)
            .map(|ch| {
                let m = mean[ch.min(mean.len() - 1)];
                let s = std[ch.min(std.len() - 1)];
                std::array::from_fn(|v| (v as f32 / 255.0 - m) / s)
            })
            .collect();
        Ok(Self {
            shape,
            lut,
            augmentation: None,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            loss_watch: None,
        })
    }

    /// The normalising batcher of a dataset (its [`DatasetKind::mean`] and
    /// [`DatasetKind::std`]).
    pub fn for_dataset(kind: DatasetKind) -> Self {
        Self::new(kind.image_shape(), kind.mean(), kind.std())
            .expect("the built-in constants are valid")
    }

    /// Adds training augmentation, seeded with `seed`.
    pub fn with_augmentation(mut self, augmentation: Augmentation, seed: u64) -> Self {
        self.augmentation = Some(augmentation);
        self.rng = Mutex::new(StdRng::seed_from_u64(seed));
        self
    }

    /// Attaches `watch` to every batch (see [`ImageBatch::loss_watch`]).
    pub fn with_loss_watch(mut self, watch: LossWatch) -> Self {
        self.loss_watch = Some(watch);
        self
    }

    fn write_image(&self, item: &ImageItem, out: &mut Vec<f32>, rng: &mut Option<&mut StdRng>) {
        let [c, h, w] = self.shape;
        let (dy, dx, flip, pad) = match (&self.augmentation, rng) {
            (Some(a), Some(rng)) => {
                let p = a.crop_padding;
                let dy = rng.random_range(0..=2 * p);
                let dx = rng.random_range(0..=2 * p);
                let flip = a.horizontal_flip && rng.random_bool(0.5);
                (dy, dx, flip, p)
            }
            _ => (0, 0, false, 0),
        };
        for ch in 0..c {
            let lut = &self.lut[ch];
            let plane = &item.pixels[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                // Row y of the crop is row y + dy of the padded image = row y + dy - pad.
                let sy = (y + dy).checked_sub(pad).filter(|&r| r < h);
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = (xx + dx).checked_sub(pad).filter(|&col| col < w);
                    let v = match (sy, sx) {
                        (Some(r), Some(col)) => plane[r * w + col],
                        _ => 0,
                    };
                    out.push(lut[v as usize]);
                }
            }
        }
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let [c, h, w] = self.shape;
        let n = items.len();
        let mut pixels = Vec::with_capacity(n * c * h * w);
        let mut guard = self
            .augmentation
            .as_ref()
            .map(|_| self.rng.lock().unwrap_or_else(|p| p.into_inner()));
        for item in &items {
            let mut rng = guard.as_deref_mut();
            self.write_image(item, &mut pixels, &mut rng);
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, c, h, w]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
            loss_watch: self.loss_watch.clone(),
        }
    }
}

/// A training loader: shuffled with `seed`, augmented with `augmentation` (seeded from
/// `seed` too), batches created on the **autodiff** version of `device`, each carrying
/// `loss_watch`. A `batch_size` above the number of images gives one batch of them all.
///
/// Batches must live on an autodiff device: Burn runs a norm in training mode only when
/// its input is on one (a batch on a plain device would silently make every BatchNorm use
/// its running estimates and never update them).
pub fn train_loader(
    dataset: ImageDataset,
    kind: DatasetKind,
    augmentation: Option<Augmentation>,
    batch_size: usize,
    seed: u64,
    loss_watch: Option<LossWatch>,
    device: &Device,
) -> Arc<dyn DataLoader<ImageBatch>> {
    let mut batcher = ImageBatcher::for_dataset(kind);
    if let Some(a) = augmentation {
        batcher = batcher.with_augmentation(a, seed);
    }
    if let Some(watch) = loss_watch {
        batcher = batcher.with_loss_watch(watch);
    }
    let batch_size = loader_batch_size(batch_size, dataset.len());
    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    DataLoaderBuilder::new(batcher)
        .batch_size(batch_size)
        .shuffle(seed)
        .num_workers(1)
        .set_device(device)
        .build(dataset)
}

/// An evaluation loader: in order, no augmentation, batches on the plain (non-autodiff)
/// version of `device`. A `batch_size` above the number of images gives one batch of them
/// all (the loader never reserves room for more items than the dataset has).
pub fn eval_loader(
    dataset: ImageDataset,
    kind: DatasetKind,
    batch_size: usize,
    device: &Device,
) -> Arc<dyn DataLoader<ImageBatch>> {
    let batch_size = loader_batch_size(batch_size, dataset.len());
    let device = if device.is_autodiff() {
        device.clone().inner()
    } else {
        device.clone()
    };
    DataLoaderBuilder::new(ImageBatcher::for_dataset(kind))
        .batch_size(batch_size)
        .num_workers(1)
        .set_device(device)
        .build(dataset)
}

/// The batch size a loader is built with: at most the number of items (Burn's loader
/// reserves room for a whole batch up front, so a huge batch size would abort the process
/// on allocation), at least 1.
fn loader_batch_size(batch_size: usize, items: usize) -> usize {
    batch_size.min(items).max(1)
}

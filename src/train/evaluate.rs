//! Scoring a classifier on a dataset in inference mode.

use burn::data::dataloader::DataLoader;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{ImageClassifier, TrainError};
use crate::data::{DatasetKind, ImageBatch, ImageDataset, eval_loader};

/// Test metrics of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Images scored.
    pub num_images: usize,
    /// Images whose top-1 prediction is the label.
    pub correct: usize,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
}

/// Scores `model` on `dataset` in inference mode: the model is switched with
/// [`Module::valid`](burn::module::Module::valid) (BatchNorm uses its running estimates)
/// and batches are created on the plain version of `device`.
///
/// # Errors
/// [`TrainError::Model`] when the images do not fit the model, [`TrainError::Data`]
/// when a batch cannot be loaded, [`TrainError::InvalidConfig`] when `batch_size` is 0.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    dataset: ImageDataset,
    kind: DatasetKind,
    batch_size: usize,
    device: &Device,
) -> Result<EvalResult, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::InvalidConfig(
            "the batch size must be at least 1".into(),
        ));
    }
    let loader = eval_loader(dataset, kind, batch_size, device);
    evaluate_loader(model, loader.as_ref())
}

/// Scores `model` on the batches of `loader`, in inference mode: the model is switched
/// with [`Module::valid`](burn::module::Module::valid) first, so its running statistics are
/// used and left untouched whatever device the batches are on.
///
/// # Errors
/// See [`evaluate`].
pub fn evaluate_loader<M: ImageClassifier>(
    model: &M,
    loader: &dyn DataLoader<ImageBatch>,
) -> Result<EvalResult, TrainError> {
    let model = model.valid();
    let progress = crate::progress::Progress::new(loader.num_items() as u64, "img", "evaluating");
    let mut num_images = 0usize;
    let mut correct = 0usize;
    let mut loss_sum = 0f64;
    for batch in loader.iter() {
        let batch = batch.map_err(|e| TrainError::Batch(e.to_string()))?;
        let n = batch.targets.dims()[0];
        let logits = model.logits(batch.images)?;
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        let hits = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(batch.targets)
            .int()
            .sum()
            .into_scalar::<i64>();
        correct += hits as usize;
        loss_sum += loss.into_scalar::<f64>() * n as f64;
        num_images += n;
        progress.inc(n as u64);
    }
    Ok(EvalResult {
        num_images,
        correct,
        accuracy: 100.0 * correct as f64 / num_images.max(1) as f64,
        loss: loss_sum / num_images.max(1) as f64,
    })
}

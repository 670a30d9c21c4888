//! ESM of an image classifier on an image dataset.

use burn::tensor::Device;

use super::{EsmError, EsmReport, measure};
use crate::data::{DatasetKind, ImageDataset, eval_loader};
use crate::progress::Progress;
use crate::train::ImageClassifier;

/// [`measure`](super::measure) of `model` on every image of `dataset` (normalised as
/// `kind`, batches of `batch_size`, plain version of `device`, inference mode).
///
/// # Errors
/// See [`measure`](super::measure); [`EsmError::Data`] when a batch cannot be loaded,
/// [`EsmError::Forward`] when the model rejects the images, [`EsmError::Data`] when
/// `batch_size` is 0.
pub fn measure_dataset<M: ImageClassifier>(
    model: &M,
    dataset: ImageDataset,
    kind: DatasetKind,
    batch_size: usize,
    device: &Device,
) -> Result<EsmReport, EsmError> {
    if batch_size == 0 {
        return Err(EsmError::Data("the batch size must be at least 1".into()));
    }
    let loader = eval_loader(dataset, kind, batch_size, device);
    let progress = Progress::new(loader.num_items() as u64, "img", "measuring ESM");
    let mut failure = None;
    let batches = loader.iter().map_while(|b| match b {
        Ok(b) => {
            progress.inc(b.targets.dims()[0] as u64);
            Some(b.images)
        }
        Err(e) => {
            failure = Some(e.to_string());
            None
        }
    });
    let mut forward_error = None;
    let report = measure(model, batches, |m, x| {
        if let Err(e) = m.logits(x) {
            forward_error.get_or_insert(e.to_string());
        }
    });
    if let Some(e) = failure {
        return Err(EsmError::Data(e));
    }
    if let Some(e) = forward_error {
        return Err(EsmError::Forward(e));
    }
    report
}

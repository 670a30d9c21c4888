//! The training and inference steps of an image classifier, for burn-train's `Learner`.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};
use burn::train::ClassificationOutput;

use crate::models::{ModelError, Network, ResNet};

/// A network that maps images `[N, C, H, W]` to class logits `[N, classes]`.
///
/// Implement it (and call [`impl_classifier_steps!`](crate::impl_classifier_steps) on your
/// type) to train your own model with [`train`](super::train) and evaluate it with
/// [`evaluate`](super::evaluate).
pub trait ImageClassifier: Module + core::fmt::Display + 'static {
    /// Class logits.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, num_classes]`
    ///
    /// # Errors
    /// A [`ModelError`] for an input the model cannot take.
    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>, ModelError>;
}

impl ImageClassifier for ResNet {
    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        self.try_forward(images)
    }
}

impl ImageClassifier for Network {
    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        self.try_forward(images)
    }
}

/// Cross-entropy classification output of `model` on a batch (PyTorch's
/// `nn.CrossEntropyLoss()`, mean over the batch).
///
/// # Panics
/// With the model's error message when the batch does not fit the model (the trainer
/// checks the dataset's image shape against the model before training starts).
pub fn classification_output<M: ImageClassifier>(
    model: &M,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
) -> ClassificationOutput {
    let logits = model.logits(images).unwrap_or_else(|e| panic!("{e}"));
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), targets.clone());
    ClassificationOutput::new(loss, logits, targets)
}

/// Implements burn-train's `TrainStep` and `InferenceStep` for an
/// [`ImageClassifier`] with [`ImageBatch`](crate::data::ImageBatch) inputs and cross-entropy outputs.
#[macro_export]
macro_rules! impl_classifier_steps {
    ($model:ty) => {
        impl burn::train::TrainStep for $model {
            type Input = $crate::data::ImageBatch;
            type Output = burn::train::ClassificationOutput;

            fn step(&self, batch: Self::Input) -> burn::train::TrainOutput<Self::Output> {
                let item = $crate::train::classification_output(self, batch.images, batch.targets);
                if let Some(watch) = &batch.loss_watch {
                    watch.observe(&item.loss);
                }
                burn::train::TrainOutput::new(self, item.loss.backward(), item)
            }
        }

        impl burn::train::InferenceStep for $model {
            type Input = $crate::data::ImageBatch;
            type Output = burn::train::ClassificationOutput;

            fn step(&self, batch: Self::Input) -> Self::Output {
                $crate::train::classification_output(self, batch.images, batch.targets)
            }
        }
    };
}

impl_classifier_steps!(ResNet);
impl_classifier_steps!(Network);

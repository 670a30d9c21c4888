//! Networks built from xbn's blocks and norms.
//!
//! - [`ResNet`] / [`ResNetConfig`]: the CIFAR ResNets of He et al. (2016, §4.2;
//!   ResNet-20/32/44/56/110, option-A shortcuts) and ResNet-18/34/50 with a CIFAR stem.
//! - [`ModelName`]: the names accepted by the command line (`resnet20`, `resnet18-cifar`).
//!
//! Every model is one type that runs on any Burn device.

mod inspect;
mod registry;
mod resnet;

pub use inspect::{BUFFER_NAMES, TensorEntry, count_parameters, tensor_entries};

pub use registry::ModelName;
pub use resnet::{ResNet, ResNetConfig, Stem};

use crate::norm::NormError;

/// Errors raised when building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A norm of the model could not be built or applied.
    #[error(transparent)]
    Norm(#[from] NormError),
    /// A CIFAR ResNet depth that is not `6n + 2`.
    #[error("a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, ...), got {0}")]
    InvalidDepth(usize),
    /// An inconsistent configuration.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// The input's channel dimension does not match the model.
    #[error(
        "the model expects {expected} input channels but got an input of shape {shape:?} \
         ([N, C, H, W]); build it with in_channels = {c} or convert the images",
        c = shape.get(1).copied().unwrap_or(0)
    )]
    InputChannels {
        /// Channels the model was built for.
        expected: usize,
        /// Shape received.
        shape: Vec<usize>,
    },
    /// A model name that is not registered.
    #[error("unknown model '{name}'; available: {available}")]
    UnknownModel {
        /// Name asked for.
        name: String,
        /// Comma-separated registered names.
        available: String,
    },
}

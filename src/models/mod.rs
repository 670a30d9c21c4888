//! Networks built from xbn's blocks and norms: the model zoo of the paper.
//!
//! - [`ResNet`] / [`ResNetConfig`]: CIFAR ResNet-20/32/44/56/110 (He et al. 2016 §4.2),
//!   ImageNet ResNet-18/34/50/101/152, ResNeXt-50 32×4d and ResNeXt-101 32×8d, and
//!   ResNet-18/34/50 with a CIFAR stem; with the XBNBlock placements P1/P2/P3.
//! - [`MobileNetV2`] and [`ShuffleNetV2`] (Megvii layout) with their XBNBlock variants.
//! - [`NetworkConfig`] / [`Network`]: any of them behind one type.
//! - [`ModelName`]: the registry of names (`resnet50-xbn-p2`, `mobilenet-v2-xbn`, ...).
//! - [`count_parameters`], [`tensor_entries`], [`Network::macs`]: model statistics.
//!
//! Every model is one type that runs on any Burn device.

mod fold;
mod inspect;
mod macs;
pub use fold::fold_conv_norm;
pub use macs::Cost;
mod mobilenet_v2;
mod network;
mod registry;
mod resnet;
mod shufflenet_v2;

pub use inspect::{BUFFER_NAMES, InitializeNow, TensorEntry, count_parameters, tensor_entries};
pub use mobilenet_v2::{
    ConvNormAct, INVERTED_RESIDUAL_SETTING, InvertedResidual, MobileNetLayer, MobileNetV2,
    MobileNetV2Config, make_divisible,
};
pub use network::{Network, NetworkConfig};
pub use registry::{Arch, ModelName};
pub use resnet::{ResNet, ResNetConfig, Stem};
pub use shufflenet_v2::{
    STAGE_REPEATS, ShuffleBlock, ShuffleNetSize, ShuffleNetV2, ShuffleNetV2Config, ShuffleProj,
    channel_split,
};

use burn::tensor::Tensor;

use crate::norm::NormError;

/// Errors raised when building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A norm of the model could not be built or applied.
    #[error(transparent)]
    Norm(#[from] NormError),
    /// A depth the architecture does not have.
    #[error(
        "invalid depth {0}: CIFAR ResNets have depth 6n + 2 (20, 32, 44, 56, 110, ...), \
         ImageNet ResNets 18, 34, 50, 101 or 152"
    )]
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
    /// A norm placement the architecture does not have.
    #[error("{model} has no '{placement}' variant; available: {available}")]
    UnsupportedPlacement {
        /// Architecture.
        model: String,
        /// Placement asked for.
        placement: String,
        /// Placements it has.
        available: String,
    },
}

/// Checks that `x` is `[N, in_channels, H, W]`.
pub(crate) fn check_input_channels(x: &Tensor<4>, in_channels: usize) -> Result<(), ModelError> {
    let dims = x.dims();
    if dims[1] != in_channels {
        return Err(ModelError::InputChannels {
            expected: in_channels,
            shape: dims.to_vec(),
        });
    }
    Ok(())
}

//! One configuration type and one module type for every architecture of the zoo.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::inspect::InitializeNow;
use super::{
    MobileNetV2, MobileNetV2Config, ModelError, ResNet, ResNetConfig, ShuffleNetV2,
    ShuffleNetV2Config,
};

/// The configuration of any zoo network (serialised in a run's `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum NetworkConfig {
    /// ResNet or ResNeXt (CIFAR or ImageNet stem).
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// MobileNetV2.
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2(MobileNetV2Config),
    /// ShuffleNetV2 (Megvii layout).
    #[serde(rename = "shufflenet_v2")]
    ShuffleNetV2(ShuffleNetV2Config),
}

impl NetworkConfig {
    /// Builds the network with its family's initialisation.
    ///
    /// # Errors
    /// The family's [`ModelError`].
    pub fn init(&self, device: &Device) -> Result<Network, ModelError> {
        Ok(self.init_lazy(device)?.initialized())
    }

    /// Builds the network without drawing its initial weights: each parameter is drawn on
    /// first use, so counting parameters, layers and MACs costs nothing. Prefer
    /// [`NetworkConfig::init`] for a model to run: it draws every weight at once, in a
    /// fixed order, so a seeded model is reproducible whatever it is used for first.
    ///
    /// # Errors
    /// The family's [`ModelError`].
    pub fn init_lazy(&self, device: &Device) -> Result<Network, ModelError> {
        Ok(match self {
            NetworkConfig::ResNet(c) => Network::ResNet(c.init_lazy(device)?),
            NetworkConfig::MobileNetV2(c) => Network::MobileNetV2(c.init_lazy(device)?),
            NetworkConfig::ShuffleNetV2(c) => Network::ShuffleNetV2(c.init_lazy(device)?),
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        match self {
            NetworkConfig::ResNet(c) => c.in_channels,
            NetworkConfig::MobileNetV2(c) => c.in_channels,
            NetworkConfig::ShuffleNetV2(c) => c.in_channels,
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        match self {
            NetworkConfig::ResNet(c) => c.num_classes,
            NetworkConfig::MobileNetV2(c) => c.num_classes,
            NetworkConfig::ShuffleNetV2(c) => c.num_classes,
        }
    }

    /// Sets the input channels.
    pub fn with_in_channels(self, in_channels: usize) -> Self {
        match self {
            NetworkConfig::ResNet(c) => NetworkConfig::ResNet(c.with_in_channels(in_channels)),
            NetworkConfig::MobileNetV2(c) => {
                NetworkConfig::MobileNetV2(c.with_in_channels(in_channels))
            }
            NetworkConfig::ShuffleNetV2(c) => {
                NetworkConfig::ShuffleNetV2(c.with_in_channels(in_channels))
            }
        }
    }

    /// Sets the number of classes.
    pub fn with_num_classes(self, num_classes: usize) -> Self {
        match self {
            NetworkConfig::ResNet(c) => NetworkConfig::ResNet(c.with_num_classes(num_classes)),
            NetworkConfig::MobileNetV2(c) => {
                NetworkConfig::MobileNetV2(c.with_num_classes(num_classes))
            }
            NetworkConfig::ShuffleNetV2(c) => {
                NetworkConfig::ShuffleNetV2(c.with_num_classes(num_classes))
            }
        }
    }
}

/// Any zoo network. Checkpoint keys leave the variant name out (PyTorch names).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Network {
    /// ResNet or ResNeXt.
    ResNet(ResNet),
    /// MobileNetV2.
    MobileNetV2(MobileNetV2),
    /// ShuffleNetV2.
    ShuffleNetV2(ShuffleNetV2),
}

impl Network {
    /// Class logits.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, num_classes]`
    ///
    /// # Errors
    /// [`ModelError::InputChannels`] for a wrong channel count, [`ModelError::Norm`] from a
    /// norm.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        match self {
            Network::ResNet(m) => m.try_forward(x),
            Network::MobileNetV2(m) => m.try_forward(x),
            Network::ShuffleNetV2(m) => m.try_forward(x),
        }
    }

    /// Number of classes (outputs of the classifier).
    pub fn num_classes(&self) -> usize {
        let classifier = match self {
            Network::ResNet(m) => &m.fc,
            Network::MobileNetV2(m) => &m.classifier,
            Network::ShuffleNetV2(m) => &m.classifier,
        };
        classifier.weight.lazy_shape()[1]
    }

    /// Like [`Network::try_forward`], panicking with the error's message.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

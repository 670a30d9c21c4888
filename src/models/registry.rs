//! Model names accepted by the command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ModelError, ResNetConfig};

/// A named architecture.
///
/// | name | network |
/// |---|---|
/// | `resnet20`, `resnet32`, `resnet44`, `resnet56`, `resnet110` | CIFAR ResNet (He et al. §4.2) |
/// | `resnet18-cifar`, `resnet34-cifar`, `resnet50-cifar` | torchvision ResNet with a CIFAR stem |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelName {
    /// CIFAR ResNet of depth `6n + 2`.
    CifarResNet(usize),
    /// ResNet-18 with a CIFAR stem.
    ResNet18Cifar,
    /// ResNet-34 with a CIFAR stem.
    ResNet34Cifar,
    /// ResNet-50 with a CIFAR stem.
    ResNet50Cifar,
}

impl ModelName {
    /// Every registered name.
    pub const ALL: [ModelName; 8] = [
        ModelName::CifarResNet(20),
        ModelName::CifarResNet(32),
        ModelName::CifarResNet(44),
        ModelName::CifarResNet(56),
        ModelName::CifarResNet(110),
        ModelName::ResNet18Cifar,
        ModelName::ResNet34Cifar,
        ModelName::ResNet50Cifar,
    ];

    /// The configuration of this architecture (10 classes, 3 input channels, BN).
    ///
    /// # Errors
    /// [`ModelError::InvalidDepth`] for a CIFAR ResNet depth that is not `6n + 2`.
    pub fn config(self) -> Result<ResNetConfig, ModelError> {
        Ok(match self {
            ModelName::CifarResNet(depth) => ResNetConfig::cifar(depth)?,
            ModelName::ResNet18Cifar => ResNetConfig::resnet18_cifar(),
            ModelName::ResNet34Cifar => ResNetConfig::resnet34_cifar(),
            ModelName::ResNet50Cifar => ResNetConfig::resnet50_cifar(),
        })
    }

    fn available() -> String {
        Self::ALL.map(|m| m.to_string()).join(", ")
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelName::CifarResNet(depth) => write!(f, "resnet{depth}"),
            ModelName::ResNet18Cifar => f.write_str("resnet18-cifar"),
            ModelName::ResNet34Cifar => f.write_str("resnet34-cifar"),
            ModelName::ResNet50Cifar => f.write_str("resnet50-cifar"),
        }
    }
}

impl FromStr for ModelName {
    type Err = ModelError;
    /// Parses a registered name, or `resnet<D>` for any CIFAR ResNet depth `D = 6n + 2`
    /// other than the ImageNet depths 18, 34 and 50.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        if let Some(m) = Self::ALL.into_iter().find(|m| m.to_string() == name) {
            return Ok(m);
        }
        name.strip_prefix("resnet")
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|&d| ![18, 34, 50].contains(&d) && ResNetConfig::cifar(d).is_ok())
            .map(ModelName::CifarResNet)
            .ok_or_else(|| ModelError::UnknownModel {
                name: s.to_string(),
                available: Self::available(),
            })
    }
}

impl From<ModelName> for String {
    fn from(m: ModelName) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for ModelName {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

//! Model names: one registry for the command line and the library.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{
    MobileNetV2Config, ModelError, NetworkConfig, ResNetConfig, ShuffleNetSize, ShuffleNetV2Config,
};
use crate::blocks::{NormPlan, Placement};
use crate::norm::NormConfig;

/// An architecture, independent of where its norms go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// CIFAR ResNet of depth `6n + 2` (`resnet20`, ..., He et al. 2016 §4.2).
    CifarResNet(usize),
    /// torchvision ResNet-18/34/50 with a CIFAR stem (`resnet18-cifar`).
    ResNetCifarStem(usize),
    /// ImageNet ResNet-18/34/50/101/152 (`resnet50`).
    ResNet(usize),
    /// ResNeXt-50 32×4d (`resnext50-32x4d`).
    ResNeXt50,
    /// ResNeXt-101 32×8d (`resnext101-32x8d`).
    ResNeXt101,
    /// MobileNetV2, width 1.0 (`mobilenet-v2`).
    MobileNetV2,
    /// ShuffleNetV2 in the Megvii layout (`shufflenet-v2-1.0x`).
    ShuffleNetV2(ShuffleNetSize),
}

const IMAGENET_DEPTHS: [usize; 5] = [18, 34, 50, 101, 152];
const CIFAR_DEPTHS: [usize; 5] = [20, 32, 44, 56, 110];

impl Arch {
    /// Every registered architecture.
    pub fn all() -> Vec<Arch> {
        let mut v: Vec<Arch> = CIFAR_DEPTHS.iter().map(|&d| Arch::CifarResNet(d)).collect();
        v.extend([18, 34, 50].map(Arch::ResNetCifarStem));
        v.extend(IMAGENET_DEPTHS.map(Arch::ResNet));
        v.extend([Arch::ResNeXt50, Arch::ResNeXt101, Arch::MobileNetV2]);
        v.extend(ShuffleNetSize::ALL.map(Arch::ShuffleNetV2));
        v
    }

    /// The norm placements this architecture has. ResNets: all of [`Placement`]; ResNeXt:
    /// `bn`, `xbn-p2` and the all-GN baseline (the authors' scripts); MobileNetV2 and
    /// ShuffleNetV2: `bn` and `xbn-p2` (the XBNBlock variant: the batch-free norm after
    /// every depthwise convolution).
    pub fn placements(self) -> &'static [Placement] {
        match self {
            Arch::CifarResNet(_) | Arch::ResNetCifarStem(_) | Arch::ResNet(_) => &Placement::ALL,
            Arch::ResNeXt50 | Arch::ResNeXt101 => {
                &[Placement::Bn, Placement::XbnP2, Placement::All]
            }
            Arch::MobileNetV2 | Arch::ShuffleNetV2(_) => &[Placement::Bn, Placement::XbnP2],
        }
    }

    /// The batch-free norm of the authors' scripts for `placement`: GN with 64 groups
    /// for ResNet/ResNeXt XBN, 32 for the all-GN baseline, 16 for MobileNetV2, 8 / 29 / 8
    /// for ShuffleNetV2 0.5× / 1.0× / 1.5× (61 at 2.0×, which has no script; see
    /// [`ShuffleNetSize::default_gn_groups`]).
    pub fn default_bfn(self, placement: Placement) -> NormConfig {
        match (self, placement) {
            (_, Placement::All) => NormConfig::group(32),
            (Arch::MobileNetV2, _) => NormConfig::group(16),
            (Arch::ShuffleNetV2(size), _) => NormConfig::group(size.default_gn_groups()),
            _ => NormConfig::group(64),
        }
    }

    /// The configuration with `placement` and `bfn` (1000 classes for ImageNet
    /// architectures, 10 for the CIFAR ones; RGB).
    ///
    /// # Errors
    /// [`ModelError::UnsupportedPlacement`] when the architecture has no such variant,
    /// [`ModelError::InvalidDepth`] for an invalid CIFAR depth.
    pub fn config(
        self,
        placement: Placement,
        bfn: NormConfig,
    ) -> Result<NetworkConfig, ModelError> {
        if !self.placements().contains(&placement) {
            return Err(ModelError::UnsupportedPlacement {
                model: self.to_string(),
                placement: placement.to_string(),
                available: self
                    .placements()
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let plan = NormPlan::new(placement, bfn.clone());
        let depthwise = if placement == Placement::Bn {
            NormConfig::batch()
        } else {
            bfn
        };
        Ok(match self {
            Arch::CifarResNet(d) => {
                NetworkConfig::ResNet(ResNetConfig::cifar(d)?.with_norm_plan(plan))
            }
            Arch::ResNetCifarStem(d) => NetworkConfig::ResNet(
                ResNetConfig::imagenet(d)?
                    .with_stem(super::Stem::Cifar)
                    .with_num_classes(10)
                    .with_norm_plan(plan),
            ),
            Arch::ResNet(d) => {
                NetworkConfig::ResNet(ResNetConfig::imagenet(d)?.with_norm_plan(plan))
            }
            Arch::ResNeXt50 => {
                NetworkConfig::ResNet(ResNetConfig::resnext50_32x4d().with_norm_plan(plan))
            }
            Arch::ResNeXt101 => {
                NetworkConfig::ResNet(ResNetConfig::resnext101_32x8d().with_norm_plan(plan))
            }
            Arch::MobileNetV2 => NetworkConfig::MobileNetV2(MobileNetV2Config::xbn(depthwise)),
            Arch::ShuffleNetV2(size) => {
                NetworkConfig::ShuffleNetV2(ShuffleNetV2Config::xbn(size, depthwise))
            }
        })
    }

    /// Native input size `[H, W]`: 32×32 for CIFAR architectures, 224×224 otherwise.
    pub fn input_size(self) -> [usize; 2] {
        match self {
            Arch::CifarResNet(_) | Arch::ResNetCifarStem(_) => [32, 32],
            _ => [224, 224],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::CifarResNet(d) => write!(f, "resnet{d}"),
            Arch::ResNetCifarStem(d) => write!(f, "resnet{d}-cifar"),
            Arch::ResNet(d) => write!(f, "resnet{d}"),
            Arch::ResNeXt50 => f.write_str("resnext50-32x4d"),
            Arch::ResNeXt101 => f.write_str("resnext101-32x8d"),
            Arch::MobileNetV2 => f.write_str("mobilenet-v2"),
            Arch::ShuffleNetV2(size) => write!(f, "shufflenet-v2-{size}"),
        }
    }
}

impl FromStr for Arch {
    type Err = ModelError;

    /// A registered name, or `resnet<D>` for any CIFAR depth `D = 6n + 2` that is not an
    /// ImageNet depth.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        if let Some(a) = Arch::all().into_iter().find(|a| a.to_string() == name) {
            return Ok(a);
        }
        name.strip_prefix("resnet")
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|d| !IMAGENET_DEPTHS.contains(d) && ResNetConfig::cifar(*d).is_ok())
            .map(Arch::CifarResNet)
            .ok_or_else(|| unknown(s))
    }
}

fn unknown(name: &str) -> ModelError {
    ModelError::UnknownModel {
        name: name.to_string(),
        available: ModelName::registered()
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A registered model: an architecture and a norm placement, named like
/// `resnet50`, `resnet50-xbn-p2`, `resnext50-32x4d-xbn`, `resnext50-32x4d-gn`,
/// `mobilenet-v2-xbn`, `shufflenet-v2-1.0x-xbn`, `resnet20-xbn-p3`.
///
/// Suffixes: none or `-bn` (BatchNorm baseline), `-xbn` (the paper's XBNBlock, P2),
/// `-xbn-p1`/`-xbn-p2`/`-xbn-p3`, `-gn` (the all-GroupNorm baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ModelName {
    /// The architecture.
    pub arch: Arch,
    /// Where the batch-free norm goes.
    pub placement: Placement,
}

impl ModelName {
    /// A name.
    pub fn new(arch: Arch, placement: Placement) -> Self {
        Self { arch, placement }
    }

    /// Every registered name (each architecture with each of its placements).
    pub fn registered() -> Vec<ModelName> {
        Arch::all()
            .into_iter()
            .flat_map(|a| a.placements().iter().map(move |&p| ModelName::new(a, p)))
            .collect()
    }

    /// The configuration with the architecture's default batch-free norm
    /// ([`Arch::default_bfn`]).
    ///
    /// # Errors
    /// See [`Arch::config`].
    pub fn config(self) -> Result<NetworkConfig, ModelError> {
        self.arch
            .config(self.placement, self.arch.default_bfn(self.placement))
    }

    /// The configuration with another batch-free norm.
    ///
    /// # Errors
    /// See [`Arch::config`].
    pub fn config_with_bfn(self, bfn: NormConfig) -> Result<NetworkConfig, ModelError> {
        self.arch.config(self.placement, bfn)
    }

    /// Checks that `bfn` can be the batch-free norm of this model's XBN blocks (`--bfn`).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a plain-BN model (it has no batch-free norm) or a
    /// `bfn` that is not batch-free.
    pub fn check_bfn(self, bfn: &NormConfig) -> Result<(), ModelError> {
        if self.placement == Placement::Bn {
            return Err(ModelError::InvalidConfig(format!(
                "{self} has no batch-free norm: --bfn applies to the -xbn, -xbn-pN and -gn models \
                 (with xbn train, to --norm-plan xbn-p1, xbn-p2, xbn-p3 or all)"
            )));
        }
        if !bfn.is_batch_free() {
            return Err(ModelError::InvalidConfig(format!(
                "--bfn must be a batch-free norm (gn[:G], ln, in or none), got {bfn}"
            )));
        }
        Ok(())
    }

    fn suffix(self) -> &'static str {
        match (self.arch, self.placement) {
            (_, Placement::Bn) => "",
            (
                Arch::ResNeXt50 | Arch::ResNeXt101 | Arch::MobileNetV2 | Arch::ShuffleNetV2(_),
                Placement::XbnP2,
            ) => "-xbn",
            (_, Placement::XbnP1) => "-xbn-p1",
            (_, Placement::XbnP2) => "-xbn-p2",
            (_, Placement::XbnP3) => "-xbn-p3",
            (_, Placement::All) => "-gn",
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.arch, self.suffix())
    }
}

impl FromStr for ModelName {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let suffixes = [
            ("-xbn-p1", Placement::XbnP1),
            ("-xbn-p2", Placement::XbnP2),
            ("-xbn-p3", Placement::XbnP3),
            ("-xbn", Placement::XbnP2),
            ("-bn", Placement::Bn),
            ("-gn", Placement::All),
        ];
        let (arch, placement) = suffixes
            .iter()
            .find_map(|(suf, p)| name.strip_suffix(suf).map(|a| (a, *p)))
            .unwrap_or((name.as_str(), Placement::Bn));
        let arch: Arch = arch.parse().map_err(|_| unknown(s))?;
        if !arch.placements().contains(&placement) {
            return Err(unknown(s));
        }
        Ok(ModelName::new(arch, placement))
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

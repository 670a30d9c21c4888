//! The norm factory: one serde-configurable description of "which norm goes here".

use std::fmt;
use std::str::FromStr;

use burn::nn::Identity;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::batch_norm::{default_eps, default_momentum, default_true};
use super::{BatchNormConfig, GroupNormConfig, Norm, NormError};

/// Which normalization layer to build, independent of its channel count.
///
/// This is xbn's `norm_layer` factory (torchvision `models/resnet.py`, timm
/// `create_norm_layer`, the authors' `my.Norm`): blocks and models take `NormConfig`s and
/// call [`NormConfig::init`] with their channel count.
///
/// String form (command line, [`FromStr`]/[`Display`](fmt::Display)): `bn`, `gn` (32 groups),
/// `gn:G`, `ln`, `in`, `none`. JSON form: `{"kind": "gn", "num_groups": 32, "eps": 1e-5,
/// "affine": true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum NormConfig {
    /// [`BatchNorm`](super::BatchNorm) with PyTorch semantics.
    #[serde(rename = "bn")]
    Batch {
        /// Default `1e-5`.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Default `Some(0.1)`; `None` = cumulative moving average.
        #[serde(default = "default_momentum")]
        momentum: Option<f64>,
        /// Default `true`.
        #[serde(default = "default_true")]
        affine: bool,
        /// Default `true`.
        #[serde(default = "default_true")]
        track_running_stats: bool,
    },
    /// [`GroupNorm`](super::GroupNorm) with `min(num_groups, C)` groups.
    #[serde(rename = "gn")]
    Group {
        /// Requested group count (clamped to the channel count).
        num_groups: usize,
        /// Default `1e-5`.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Default `true`.
        #[serde(default = "default_true")]
        affine: bool,
    },
    /// LayerNorm in the CNN sense: one group over `C, H, W` (`GroupNorm(1, C)`), with a
    /// per-channel affine.
    #[serde(rename = "ln")]
    Layer {
        /// Default `1e-5`.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Default `true`.
        #[serde(default = "default_true")]
        affine: bool,
    },
    /// InstanceNorm: every channel of every sample on its own (`GroupNorm(C, C)`). Affine
    /// by default (PyTorch's `InstanceNorm2d` defaults to `affine=False`; xbn keeps the
    /// affine so an XBN network has the parameter count of its BN baseline).
    #[serde(rename = "in")]
    Instance {
        /// Default `1e-5`.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Default `true`.
        #[serde(default = "default_true")]
        affine: bool,
    },
    /// No normalization.
    #[serde(rename = "none")]
    Identity,
}

/// GroupNorm's group count when `gn` is given without one (Wu & He 2018).
pub const DEFAULT_GN_GROUPS: usize = 32;

impl Default for NormConfig {
    /// PyTorch's `BatchNorm2d` defaults.
    fn default() -> Self {
        Self::batch()
    }
}

impl NormConfig {
    /// BatchNorm with PyTorch's defaults (`eps 1e-5`, `momentum 0.1`, affine, tracking).
    pub fn batch() -> Self {
        NormConfig::Batch {
            eps: default_eps(),
            momentum: default_momentum(),
            affine: true,
            track_running_stats: true,
        }
    }

    /// GroupNorm with `num_groups` groups (clamped to the channel count).
    pub fn group(num_groups: usize) -> Self {
        NormConfig::Group {
            num_groups,
            eps: default_eps(),
            affine: true,
        }
    }

    /// LayerNorm in the CNN sense (one group).
    pub fn layer() -> Self {
        NormConfig::Layer {
            eps: default_eps(),
            affine: true,
        }
    }

    /// InstanceNorm with a per-channel affine.
    pub fn instance() -> Self {
        NormConfig::Instance {
            eps: default_eps(),
            affine: true,
        }
    }

    /// No normalization.
    pub fn identity() -> Self {
        NormConfig::Identity
    }

    /// Whether the norm is batch-free (everything but BatchNorm).
    pub fn is_batch_free(&self) -> bool {
        !matches!(self, NormConfig::Batch { .. })
    }

    /// Builds the norm for `num_features` channels on `device`.
    ///
    /// # Errors
    /// Any [`NormError`] of the layer's own `init` (zero channels, invalid `eps` or
    /// `momentum`, a group count that does not divide the channels after clamping).
    pub fn init(
        &self,
        num_features: usize,
        device: &burn::tensor::Device,
    ) -> Result<Norm, NormError> {
        Ok(match *self {
            NormConfig::Batch {
                eps,
                momentum,
                affine,
                track_running_stats,
            } => Norm::Batch(
                BatchNormConfig::new(num_features)
                    .with_eps(eps)
                    .with_momentum(momentum)
                    .with_affine(affine)
                    .with_track_running_stats(track_running_stats)
                    .init(device)?,
            ),
            NormConfig::Group {
                num_groups,
                eps,
                affine,
            } => Norm::Group(group_norm(num_groups, num_features, eps, affine, device)?),
            NormConfig::Layer { eps, affine } => {
                Norm::Group(group_norm(1, num_features, eps, affine, device)?)
            }
            NormConfig::Instance { eps, affine } => Norm::Group(group_norm(
                num_features.max(1),
                num_features,
                eps,
                affine,
                device,
            )?),
            NormConfig::Identity => {
                if num_features == 0 {
                    return Err(NormError::ZeroFeatures);
                }
                Norm::Identity(Identity::new())
            }
        })
    }
}

fn group_norm(
    groups: usize,
    channels: usize,
    eps: f64,
    affine: bool,
    device: &Device,
) -> Result<super::GroupNorm, NormError> {
    GroupNormConfig::new(groups, channels)
        .with_eps(eps)
        .with_affine(affine)
        .init(device)
}

impl FromStr for NormConfig {
    type Err = NormError;

    /// Parses `bn`, `gn`, `gn:G` (also `gnG`), `ln`, `in`, `none` (also `identity`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let parse_err = || NormError::Parse(s.to_string());
        match lower.as_str() {
            "bn" | "batch" | "batchnorm" => Ok(Self::batch()),
            "gn" | "group" | "groupnorm" => Ok(Self::group(DEFAULT_GN_GROUPS)),
            "ln" | "layer" | "layernorm" => Ok(Self::layer()),
            "in" | "instance" | "instancenorm" => Ok(Self::instance()),
            "none" | "identity" => Ok(Self::identity()),
            other => {
                let groups = other
                    .strip_prefix("gn:")
                    .or_else(|| other.strip_prefix("gn"))
                    .ok_or_else(parse_err)?;
                let groups: usize = groups.parse().map_err(|_| parse_err())?;
                if groups == 0 {
                    return Err(NormError::ZeroGroups);
                }
                Ok(Self::group(groups))
            }
        }
    }
}

/// The short command-line form (`bn`, `gn:32`, `ln`, `in`, `none`). It names the kind and
/// the group count only: `eps`, `momentum` and `affine` are in the JSON form.
impl fmt::Display for NormConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NormConfig::Batch { .. } => write!(f, "bn"),
            NormConfig::Group { num_groups, .. } => write!(f, "gn:{num_groups}"),
            NormConfig::Layer { .. } => write!(f, "ln"),
            NormConfig::Instance { .. } => write!(f, "in"),
            NormConfig::Identity => write!(f, "none"),
        }
    }
}

//! Normalization layers and the norm factory.
//!
//! - [`BatchNorm`]: PyTorch-exact batch normalization (running variance updated with the
//!   unbiased batch variance, `momentum: None` = cumulative average, `affine`,
//!   `track_running_stats`).
//! - [`GroupNorm`]: group normalization with the authors' clamping `groups = min(G, C)`.
//! - The batch-free norms of the paper: GroupNorm, LayerNorm in the CNN sense
//!   (`GroupNorm(1, C)`: one group over `C, H, W`), InstanceNorm (`GroupNorm(C, C)`, affine),
//!   and Identity (no normalization).
//! - [`NormConfig`]: one serde-configurable factory; `NormConfig::init(num_features, device)`
//!   returns a [`Norm`] module or a typed [`NormError`]. Blocks receive their norms from it
//!   (torchvision's `norm_layer`, timm's `create_norm`), so an XBN network is a *placement*
//!   of norms.
//!
//! ```
//! use xbn::norm::NormConfig;
//! let device = burn::tensor::Device::flex();
//! let gn: NormConfig = "gn:32".parse().unwrap();
//! let norm = gn.init(64, &device).unwrap(); // GroupNorm(32 groups, 64 channels)
//! assert!(norm.is_batch_free());
//! // 29 groups on 24 channels are clamped to 24 (the authors' rule) ...
//! assert!(NormConfig::group(29).init(24, &device).is_ok());
//! // ... but 59 channels cannot be split into 29 groups: a typed error, not a panic.
//! assert!(NormConfig::group(29).init(59, &device).is_err());
//! ```

mod batch_norm;
mod check;
mod config;
pub mod fused;
mod group_norm;

pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use config::NormConfig;
pub use group_norm::{GroupNorm, GroupNormConfig};

use burn::module::Module;
use burn::nn::Identity;
use burn::tensor::Tensor;

/// Errors raised when building or applying a normalization layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NormError {
    /// A norm was asked for zero channels.
    #[error("a norm layer needs at least one channel (num_features = 0)")]
    ZeroFeatures,
    /// GroupNorm was asked for zero groups.
    #[error("GroupNorm needs at least one group (num_groups = 0); use e.g. gn:32")]
    ZeroGroups,
    /// `eps` is not a finite positive number.
    #[error("eps must be finite and > 0, got {0}")]
    InvalidEps(f64),
    /// `momentum` is outside `[0, 1]`.
    #[error("momentum must be in [0, 1] (or None for a cumulative average), got {0}")]
    InvalidMomentum(f64),
    /// The clamped group count does not divide the channel count.
    #[error(
        "GroupNorm: {channels} channels are not divisible by {groups} groups \
         (requested {requested}, clamped to min(groups, channels)); \
         choose a group count that divides {channels}, e.g. {nearest}"
    )]
    GroupsDoNotDivide {
        /// Groups asked for.
        requested: usize,
        /// Groups after clamping to the channel count.
        groups: usize,
        /// Channel count.
        channels: usize,
        /// The divisor of `channels` nearest to `groups`.
        nearest: usize,
    },
    /// The input has fewer than two dimensions.
    #[error(
        "{layer} expects an input of shape [N, C] or [N, C, ...] (rank >= 2), got shape {shape:?}"
    )]
    InvalidRank {
        /// Layer name.
        layer: &'static str,
        /// Shape received.
        shape: Vec<usize>,
    },
    /// Dimension 1 of the input is not the layer's channel count.
    #[error(
        "{layer} was built for {expected} channels but the input has shape {shape:?} (channels are dimension 1)"
    )]
    ChannelMismatch {
        /// Layer name.
        layer: &'static str,
        /// Channels the layer was built for.
        expected: usize,
        /// Shape received.
        shape: Vec<usize>,
    },
    /// Batch statistics were needed on one value per channel.
    #[error(
        "BatchNorm: expected more than 1 value per channel when training, got input size {shape:?}; \
         use a batch size > 1 (or drop the last, incomplete batch)"
    )]
    SingleValuePerChannel {
        /// Shape received.
        shape: Vec<usize>,
    },
    /// Some but not all of `running_mean`, `running_var`, `num_batches_tracked` are set.
    #[error(
        "BatchNorm: running_mean, running_var and num_batches_tracked must be all present or all absent"
    )]
    InconsistentRunningStats,
    /// A norm specification string could not be parsed.
    #[error("unknown norm '{0}': use bn, gn[:GROUPS], ln, in or none")]
    Parse(String),
}

/// A normalization layer built by [`NormConfig::init`].
///
/// Checkpoint keys drop the variant name (stores use `skip_enum_variants`), so a norm in
/// field `bn1` saves as `bn1.weight`, `bn1.running_mean`, ... as in PyTorch.
#[derive(Module, Debug)]
pub enum Norm {
    /// Batch normalization.
    Batch(BatchNorm),
    /// Group normalization (also LayerNorm with one group and InstanceNorm with `C` groups).
    Group(GroupNorm),
    /// No normalization.
    Identity(Identity),
}

impl Norm {
    /// Applies the norm.
    ///
    /// # Shapes
    /// - input: `[N, C, ...]`; output: same shape.
    ///
    /// # Panics
    /// With the message of the [`NormError`] that [`Norm::try_forward`] would return.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Applies the norm, returning an error instead of panicking.
    ///
    /// # Errors
    /// See [`BatchNorm::try_forward`] and [`GroupNorm::try_forward`].
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        match self {
            Norm::Batch(bn) => bn.try_forward(input),
            Norm::Group(gn) => gn.try_forward(input),
            Norm::Identity(id) => Ok(id.forward(input)),
        }
    }

    /// Whether the norm computes the same thing in training and inference, independently
    /// of the other samples of the batch (GroupNorm, LayerNorm, InstanceNorm, Identity).
    pub fn is_batch_free(&self) -> bool {
        !matches!(self, Norm::Batch(_))
    }

    /// The batch norm inside, if this is one.
    pub fn as_batch_norm(&self) -> Option<&BatchNorm> {
        match self {
            Norm::Batch(bn) => Some(bn),
            _ => None,
        }
    }
}

//! Group normalization with the XBNBlock authors' group clamping.

use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::NormError;
use super::batch_norm::{default_eps, default_true};
use super::check::{check_eps, check_features, check_input};

/// Configuration of a [`GroupNorm`] layer.
///
/// Defaults are PyTorch's `nn.GroupNorm(num_groups, num_channels)`: `eps = 1e-5`,
/// `affine = true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupNormConfig {
    /// Requested number of groups `G`. The layer uses `min(G, C)` groups, as the authors'
    /// `my.Norm` GN factory does (e.g. 29 groups on 24 channels become 24 groups).
    pub num_groups: usize,
    /// Number of channels `C`.
    pub num_channels: usize,
    /// Added to the variance for numerical stability. Default `1e-5`.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Learn a per-channel `weight` (init 1) and `bias` (init 0). Default `true`.
    #[serde(default = "default_true")]
    pub affine: bool,
}

impl GroupNormConfig {
    /// PyTorch's defaults for `num_groups` groups over `num_channels` channels.
    pub fn new(num_groups: usize, num_channels: usize) -> Self {
        Self {
            num_groups,
            num_channels,
            eps: default_eps(),
            affine: true,
        }
    }

    /// Sets `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets `affine`.
    pub fn with_affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// The group count actually used: `min(num_groups, num_channels)`.
    pub fn clamped_groups(&self) -> usize {
        self.num_groups.min(self.num_channels)
    }

    /// Builds the layer on `device`.
    ///
    /// # Errors
    /// - [`NormError::ZeroGroups`] / [`NormError::ZeroFeatures`] / [`NormError::InvalidEps`].
    /// - [`NormError::GroupsDoNotDivide`] when `C` is not divisible by `min(G, C)`; PyTorch
    ///   raises in the same case.
    pub fn init(&self, device: &Device) -> Result<GroupNorm, NormError> {
        if self.num_groups == 0 {
            return Err(NormError::ZeroGroups);
        }
        check_features(self.num_channels)?;
        check_eps(self.eps)?;
        let groups = self.clamped_groups();
        let c = self.num_channels;
        if !c.is_multiple_of(groups) {
            let divisors: Vec<usize> = (1..=c).filter(|d| c.is_multiple_of(*d)).collect();
            let nearest = *divisors
                .iter()
                .min_by_key(|d| d.abs_diff(groups))
                .expect("1 divides every channel count");
            return Err(NormError::GroupsDoNotDivide {
                requested: self.num_groups,
                groups,
                channels: c,
                nearest,
            });
        }
        let (weight, bias) = if self.affine {
            (
                Some(Param::from_tensor(Tensor::ones([c], device))),
                Some(Param::from_tensor(Tensor::zeros([c], device))),
            )
        } else {
            (None, None)
        };
        Ok(GroupNorm {
            weight,
            bias,
            num_groups: groups,
            num_channels: c,
            eps: self.eps,
        })
    }
}

/// Group normalization (Wu & He 2018), matching `torch.nn.GroupNorm`.
///
/// The `C` channels are split into `num_groups` contiguous groups; each sample is
/// normalized within each group over the group's channels and all spatial positions, with
/// the biased variance, then scaled and shifted per channel:
/// `y = (x − μ_{n,g}) / sqrt(σ²_{n,g} + eps) · weight_c + bias_c`.
///
/// The same computation runs in training and inference and does not depend on the other
/// samples of the batch: a *batch-free* norm. With one group it is the CNN LayerNorm (over
/// `C, H, W`), with `C` groups the InstanceNorm.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct GroupNorm {
    /// Per-channel scale `[C]` (present when `affine`).
    pub weight: Option<Param<Tensor<1>>>,
    /// Per-channel shift `[C]` (present when `affine`).
    pub bias: Option<Param<Tensor<1>>>,
    /// Number of groups actually used (already clamped to `C`).
    pub num_groups: usize,
    /// Number of channels `C`.
    pub num_channels: usize,
    /// Added to the variance for numerical stability.
    pub eps: f64,
}

impl GroupNorm {
    /// Applies group normalization.
    ///
    /// # Shapes
    /// - input: `[N, C, ...]` with at least one dimension after `C` (e.g. `[N, C, H, W]`)
    /// - output: same as the input
    ///
    /// # Panics
    /// With the message of the [`NormError`] that [`GroupNorm::try_forward`] would return.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Applies group normalization, returning an error instead of panicking.
    ///
    /// # Errors
    /// [`NormError::InvalidRank`] for rank < 2, [`NormError::ChannelMismatch`] when
    /// dimension 1 is not `num_channels`.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        check_input(&dims, self.num_channels, "GroupNorm")?;
        let (weight, bias) = match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => (Some(w.val()), Some(b.val())),
            _ => (None, None),
        };
        Ok(super::fused::group_norm(
            input,
            weight,
            bias,
            self.num_groups,
            self.eps,
        ))
    }
}

impl ModuleDisplay for GroupNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("num_groups", &self.num_groups)
            .add("num_channels", &self.num_channels)
            .add("eps", &self.eps)
            .add("affine", &self.weight.is_some())
            .optional()
    }
}

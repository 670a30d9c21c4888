//! The three-convolution residual block of ResNet-50/101/152 and ResNeXt.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::conv::conv;
use super::{NormPlan, Shortcut, ShortcutKind};
use crate::models::ModelError;
use crate::norm::{Norm, NormError};

/// `Bottleneck` (torchvision layout, "ResNet v1.5": the stride on the 3×3):
/// 1×1 (`in → width`) → `bn1` → ReLU → 3×3 grouped, stride `s` → `bn2` → ReLU →
/// 1×1 (`width → 4·planes`) → `bn3` → `+ downsample(x)` → ReLU, with
/// `width = int(planes · width_per_group / 64) · groups`.
///
/// Norms come from [`NormPlan::bottleneck`]; XBN-P2, the paper's XBNBlock, puts the
/// batch-free norm in `bn2` (Fig. 6).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 convolution `[width, in, 1, 1]`.
    pub conv1: Conv2d,
    /// First norm (over `width`).
    pub bn1: Norm,
    /// 3×3 convolution `[width, width / groups, 3, 3]` with the block's stride.
    pub conv2: Conv2d,
    /// Second norm (over `width`).
    pub bn2: Norm,
    /// 1×1 convolution `[4·planes, width, 1, 1]`.
    pub conv3: Conv2d,
    /// Third norm (over `4·planes`).
    pub bn3: Norm,
    /// Shortcut when the shape changes (`None`: identity).
    pub downsample: Option<Shortcut>,
}

impl Bottleneck {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 4;

    /// Width of the 3×3 convolution: `int(planes · width_per_group / 64) · groups`.
    pub fn width(planes: usize, groups: usize, width_per_group: usize) -> usize {
        planes * width_per_group / 64 * groups
    }

    /// Builds a block from `in_channels` to `4·planes` channels; `groups` and
    /// `width_per_group` are 1 and 64 for ResNet, e.g. 32 and 4 for ResNeXt-50 32×4d.
    ///
    /// # Errors
    /// [`ModelError::Norm`] when a norm of the plan cannot be built for these channels,
    /// [`ModelError::InvalidConfig`] for an impossible shortcut.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        planes: usize,
        stride: usize,
        groups: usize,
        width_per_group: usize,
        shortcut: ShortcutKind,
        plan: &NormPlan,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let width = Self::width(planes, groups, width_per_group);
        let out = planes * Self::EXPANSION;
        Ok(Self {
            conv1: conv(in_channels, width, 1, 1, 1, device),
            bn1: plan.bottleneck[0].init(width, device)?,
            conv2: conv(width, width, 3, stride, groups, device),
            bn2: plan.bottleneck[1].init(width, device)?,
            conv3: conv(width, out, 1, 1, 1, device),
            bn3: plan.bottleneck[2].init(out, device)?,
            downsample: Shortcut::new(
                shortcut,
                in_channels,
                out,
                stride,
                &plan.downsample,
                device,
            )?,
        })
    }

    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, 4·planes, ceil(H / stride), ceil(W / stride)]`
    ///
    /// # Errors
    /// A [`NormError`] from a norm (e.g. one value per channel while training).
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        let identity = match &self.downsample {
            Some(d) => d.try_forward(x.clone())?,
            None => x.clone(),
        };
        let out = relu(self.bn1.try_forward(self.conv1.forward(x))?);
        let out = relu(self.bn2.try_forward(self.conv2.forward(out))?);
        let out = self.bn3.try_forward(self.conv3.forward(out))?;
        Ok(relu(out.add(identity)))
    }
}

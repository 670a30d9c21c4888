//! The two-convolution residual block of ResNet-18/34 and the CIFAR ResNets.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::conv::conv;
use super::{NormPlan, Shortcut, ShortcutKind};
use crate::models::ModelError;
use crate::norm::{Norm, NormError};

/// `BasicBlock` (He et al. 2016, torchvision layout):
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x))`, 3×3 convolutions, the stride
/// on `conv1`. Norms come from [`NormPlan::basic`]; XBN-P1/P2 put the batch-free norm in
/// `bn1`, XBN-P3 in `bn2`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3 convolution `[planes, in, 3, 3]` with the block's stride.
    pub conv1: Conv2d,
    /// First norm.
    pub bn1: Norm,
    /// 3×3 convolution `[planes, planes, 3, 3]`.
    pub conv2: Conv2d,
    /// Second norm.
    pub bn2: Norm,
    /// Shortcut when the shape changes (`None`: identity).
    pub downsample: Option<Shortcut>,
}

impl BasicBlock {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 1;

    /// Builds a block from `in_channels` to `planes` channels.
    ///
    /// # Errors
    /// [`ModelError::Norm`] when a norm of the plan cannot be built for these channels,
    /// [`ModelError::InvalidConfig`] for an impossible shortcut.
    pub fn new(
        in_channels: usize,
        planes: usize,
        stride: usize,
        shortcut: ShortcutKind,
        plan: &NormPlan,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            conv1: conv(in_channels, planes, 3, stride, 1, device),
            bn1: plan.basic[0].init(planes, device)?,
            conv2: conv(planes, planes, 3, 1, 1, device),
            bn2: plan.basic[1].init(planes, device)?,
            downsample: Shortcut::new(
                shortcut,
                in_channels,
                planes,
                stride,
                &plan.downsample,
                device,
            )?,
        })
    }

    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, planes, ceil(H / stride), ceil(W / stride)]`
    ///
    /// # Errors
    /// A [`NormError`] from a norm (e.g. one value per channel while training).
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        let identity = match &self.downsample {
            Some(d) => d.try_forward(x.clone())?,
            None => x.clone(),
        };
        let out = relu(self.bn1.try_forward(self.conv1.forward(x))?);
        let out = self.bn2.try_forward(self.conv2.forward(out))?;
        Ok(relu(out.add(identity)))
    }
}

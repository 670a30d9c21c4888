//! Shortcut connections of residual blocks whose shape changes.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::conv;
use crate::models::ModelError;
use crate::norm::{Norm, NormConfig, NormError};

/// How a block's shortcut matches a change of shape (He et al. 2016, §3.3 and §4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum ShortcutKind {
    /// Option A: parameter-free identity, subsampled by the stride and zero-padded in the
    /// channel dimension (the CIFAR ResNets of He et al. §4.2).
    #[default]
    A,
    /// Option B: 1×1 convolution with the stride, then a norm (torchvision's
    /// `downsample`).
    B,
}

/// The `downsample` branch of a residual block.
#[derive(Module, Debug)]
// Modules are built once and moved rarely; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
pub enum Shortcut {
    /// Option B: `conv` (1×1, stride `s`, no bias) then `bn`.
    Projection(Projection),
    /// Option A: `x[:, :, ::s, ::s]` zero-padded from `in` to `out` channels.
    ZeroPad(ZeroPad),
}

impl Shortcut {
    /// Builds the shortcut of a block going from `in_channels` to `out_channels` with
    /// `stride`, or `None` when the identity fits.
    ///
    /// # Errors
    /// [`ModelError::Norm`] from the projection's norm; [`ModelError::InvalidConfig`] for
    /// an option-A shortcut that would have to drop channels (`out_channels < in_channels`).
    pub fn new(
        kind: ShortcutKind,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        norm: &NormConfig,
        device: &Device,
    ) -> Result<Option<Self>, ModelError> {
        if stride == 1 && in_channels == out_channels {
            return Ok(None);
        }
        Ok(Some(match kind {
            ShortcutKind::B => Shortcut::Projection(Projection {
                conv: conv(in_channels, out_channels, 1, stride, 1, device),
                bn: norm.init(out_channels, device)?,
            }),
            ShortcutKind::A => {
                let pad = out_channels.checked_sub(in_channels).ok_or_else(|| {
                    ModelError::InvalidConfig(format!(
                        "an option-A (zero-padding) shortcut cannot go from {in_channels} to \
                         {out_channels} channels; use option B"
                    ))
                })?;
                Shortcut::ZeroPad(ZeroPad {
                    stride,
                    pad_front: pad / 2,
                    pad_back: pad - pad / 2,
                })
            }
        }))
    }

    /// Applies the shortcut.
    ///
    /// # Shapes
    /// - input: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ceil(H / s), ceil(W / s)]`
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        match self {
            Shortcut::Projection(p) => p.bn.try_forward(p.conv.forward(x)),
            Shortcut::ZeroPad(z) => Ok(z.forward(x)),
        }
    }
}

/// Option-B projection: 1×1 convolution then a norm.
#[derive(Module, Debug)]
pub struct Projection {
    /// 1×1 convolution `[C_out, C_in, 1, 1]`, stride `s`, no bias.
    pub conv: Conv2d,
    /// Norm over `C_out` channels (BatchNorm in every XBN placement but `all`).
    pub bn: Norm,
}

/// Option-A shortcut: spatial subsampling then zero channels, split evenly before and
/// after the input channels (`F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, p // 2, p - p // 2))`,
/// as in the common PyTorch CIFAR ResNet code).
#[derive(Module, Debug)]
pub struct ZeroPad {
    /// Spatial stride of the subsampling.
    pub stride: usize,
    /// Zero channels put before the input channels.
    pub pad_front: usize,
    /// Zero channels put after the input channels.
    pub pad_back: usize,
}

impl ZeroPad {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, pad_front + C + pad_back, ceil(H / s), ceil(W / s)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Every `stride`-th row and column: a 1×1 average pool with that stride is exactly
        // the strided slice `x[:, :, ::s, ::s]`, and its backward works on every backend
        // (burn-tch 0.22.1's backward of a strided slice calls `view(-1)` on a
        // non-contiguous gradient and fails; reported upstream as the `slice_assign` bug).
        let x = if self.stride > 1 {
            burn::tensor::module::avg_pool2d(
                x,
                AvgPoolOptions::new([1, 1]).with_stride([self.stride, self.stride]),
            )
        } else {
            x
        };
        if self.pad_front + self.pad_back == 0 {
            return x;
        }
        x.pad(
            [(0, 0), (self.pad_front, self.pad_back), (0, 0), (0, 0)],
            PadMode::Constant(0.0),
        )
    }
}

//! Convolution constructors with the authors' initialisation.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::Device;

/// Standard deviation of the ResNet convolution initialisation,
/// `sqrt(2 / (k·k·out_channels))` (He et al. 2015, "fan-out" mode).
///
/// This is the authors' `m.weight.data.normal_(0, math.sqrt(2. / n))` with
/// `n = kernel_h · kernel_w · out_channels`, which is also PyTorch's
/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`. Burn's `KaimingNormal` divides
/// the fan-out by `groups`, which is wrong for grouped convolutions, so xbn passes the
/// standard deviation explicitly.
pub fn he_fan_out_std(kernel: usize, out_channels: usize) -> f64 {
    (2.0 / (kernel * kernel * out_channels) as f64).sqrt()
}

/// A bias-free `k×k` convolution with PyTorch's padding `k / 2` ("same" for odd `k` at
/// stride 1), initialised with N(0, [`he_fan_out_std`]).
///
/// Weight shape: `[out_channels, in_channels / groups, k, k]`.
pub fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let std = he_fan_out_std(kernel, out_channels);
    conv_with_std(
        in_channels,
        out_channels,
        kernel,
        stride,
        groups,
        std,
        device,
    )
}

/// A bias-free `k×k` convolution with padding `k / 2`, initialised with N(0, `std`).
///
/// `in_channels` and `out_channels` must be multiples of `groups` (the model configs
/// check this before building).
pub fn conv_with_std(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    std: f64,
    device: &Device,
) -> Conv2d {
    let p = kernel / 2;
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_groups(groups)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

//! Multiply-accumulate counts and activation sizes of the zoo networks, for one image:
//! convolutions and linear layers (norms, activations and pooling excluded from the MACs,
//! as paper.md §6.1 counts them).

use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};

use super::{MobileNetLayer, MobileNetV2, Network, ResNet, ShuffleNetV2};
use crate::blocks::{ResidualBlock, Shortcut};

/// MACs of `conv` on an `[H, W]` input, and its output size.
pub fn conv_macs(conv: &Conv2d, [h, w]: [usize; 2]) -> (u64, [usize; 2]) {
    // The shape without initialising a lazily built weight.
    let [out_c, in_per_group, kh, kw] = conv.weight.lazy_shape().dims::<4>();
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => (t, l, b, r),
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        // "Same" keeps the size at stride 1; xbn's models never use it.
        PaddingConfig2d::Same => ((kh - 1) / 2, (kw - 1) / 2, kh / 2, kw / 2),
    };
    let out = |size: usize, before: usize, after: usize, k: usize, s: usize, d: usize| {
        (size + before + after).saturating_sub(d * (k - 1) + 1) / s + 1
    };
    let oh = out(h, top, bottom, kh, conv.stride[0], conv.dilation[0]);
    let ow = out(w, left, right, kw, conv.stride[1], conv.dilation[1]);
    let macs = (oh * ow * out_c * in_per_group * kh * kw) as u64;
    (macs, [oh, ow])
}

/// The cost of one image through a network: multiply-accumulates of its convolutions and
/// linear layers, and the number of values those layers output (the activations a forward
/// pass produces, before norms and non-linearities, which produce as many again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Output values of the convolutions and linear layers.
    pub activations: u64,
}

impl Cost {
    /// Adds `conv` applied to an `[H, W]` input; returns its output size.
    fn conv(&mut self, conv: &Conv2d, hw: [usize; 2]) -> [usize; 2] {
        let (macs, out) = conv_macs(conv, hw);
        self.macs += macs;
        self.activations += (out[0] * out[1] * conv.weight.lazy_shape()[0]) as u64;
        out
    }

    /// Adds a linear layer (one input vector).
    fn linear(mut self, linear: &Linear) -> Self {
        let [d_in, d_out] = linear.weight.lazy_shape().dims::<2>();
        self.macs += (d_in * d_out) as u64;
        self.activations += d_out as u64;
        self
    }
}

/// Size after a 3×3, stride-2, padding-1 max-pool.
fn maxpool_size([h, w]: [usize; 2]) -> [usize; 2] {
    [(h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1]
}

impl ResNet {
    /// MACs and activations of one `[H, W]` image.
    pub fn cost(&self, hw: [usize; 2]) -> Cost {
        let mut cost = Cost::default();
        let mut hw = cost.conv(&self.conv1, hw);
        if self.maxpool.is_some() {
            hw = maxpool_size(hw);
        }
        for block in self.blocks() {
            let input = hw;
            let (convs, downsample): (Vec<&Conv2d>, _) = match block {
                ResidualBlock::Basic(b) => (vec![&b.conv1, &b.conv2], &b.downsample),
                ResidualBlock::Bottleneck(b) => (vec![&b.conv1, &b.conv2, &b.conv3], &b.downsample),
            };
            for c in convs {
                hw = cost.conv(c, hw);
            }
            if let Some(Shortcut::Projection(p)) = downsample {
                cost.conv(&p.conv, input);
            }
        }
        cost.linear(&self.fc)
    }
}

impl MobileNetV2 {
    /// MACs and activations of one `[H, W]` image.
    pub fn cost(&self, hw: [usize; 2]) -> Cost {
        let mut cost = Cost::default();
        let mut hw = hw;
        for layer in &self.features {
            match layer {
                MobileNetLayer::Conv(c) => hw = cost.conv(&c.conv, hw),
                MobileNetLayer::InvertedResidual(b) => {
                    if let Some(e) = &b.expand {
                        hw = cost.conv(&e.conv, hw);
                    }
                    hw = cost.conv(&b.depthwise, hw);
                    hw = cost.conv(&b.project, hw);
                }
            }
        }
        cost.linear(&self.classifier)
    }
}

impl ShuffleNetV2 {
    /// MACs and activations of one `[H, W]` image.
    pub fn cost(&self, hw: [usize; 2]) -> Cost {
        let mut cost = Cost::default();
        let hw = cost.conv(&self.first_conv, hw);
        let mut hw = maxpool_size(hw);
        for block in &self.features {
            let input = hw;
            if let Some(p) = &block.proj {
                let out = cost.conv(&p.dw, input);
                cost.conv(&p.pw, out);
            }
            for c in [&block.main_pw, &block.main_dw, &block.main_pw_linear] {
                hw = cost.conv(c, hw);
            }
        }
        cost.conv(&self.conv_last, hw);
        cost.linear(&self.classifier)
    }
}

impl Network {
    /// MACs and activations of one `[H, W]` image.
    pub fn cost(&self, hw: [usize; 2]) -> Cost {
        match self {
            Network::ResNet(m) => m.cost(hw),
            Network::MobileNetV2(m) => m.cost(hw),
            Network::ShuffleNetV2(m) => m.cost(hw),
        }
    }

    /// Multiply-accumulates of one `[H, W]` image: convolutions and linear layers (norms,
    /// activations and pooling excluded).
    pub fn macs(&self, hw: [usize; 2]) -> u64 {
        self.cost(hw).macs
    }
}

//! Multiply-accumulate counts of the zoo networks: convolutions and linear layers, for one
//! image (norms, activations and pooling excluded, as paper.md §6.1 counts them).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;

use super::{MobileNetLayer, MobileNetV2, Network, ResNet, ShuffleNetV2};
use crate::blocks::{ResidualBlock, Shortcut};

/// MACs of `conv` on an `[H, W]` input, and its output size.
pub fn conv_macs(conv: &Conv2d, [h, w]: [usize; 2]) -> (u64, [usize; 2]) {
    let [out_c, in_per_group, kh, kw] = conv.weight.dims();
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

/// Size after a 3×3, stride-2, padding-1 max-pool.
fn maxpool_size([h, w]: [usize; 2]) -> [usize; 2] {
    [(h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1]
}

impl ResNet {
    /// Multiply-accumulates of one `[H, W]` image (convolutions and the classifier).
    pub fn macs(&self, hw: [usize; 2]) -> u64 {
        let (mut total, mut hw) = conv_macs(&self.conv1, hw);
        if self.maxpool.is_some() {
            hw = maxpool_size(hw);
        }
        for block in self.blocks() {
            let input = hw;
            let convs: Vec<&Conv2d> = match block {
                ResidualBlock::Basic(b) => vec![&b.conv1, &b.conv2],
                ResidualBlock::Bottleneck(b) => vec![&b.conv1, &b.conv2, &b.conv3],
            };
            for c in convs {
                let (m, out) = conv_macs(c, hw);
                total += m;
                hw = out;
            }
            let downsample = match block {
                ResidualBlock::Basic(b) => &b.downsample,
                ResidualBlock::Bottleneck(b) => &b.downsample,
            };
            if let Some(Shortcut::Projection(p)) = downsample {
                total += conv_macs(&p.conv, input).0;
            }
        }
        let [d_in, d_out] = self.fc.weight.dims();
        total + (d_in * d_out) as u64
    }
}

impl MobileNetV2 {
    /// Multiply-accumulates of one `[H, W]` image (convolutions and the classifier).
    pub fn macs(&self, hw: [usize; 2]) -> u64 {
        let mut total = 0;
        let mut hw = hw;
        let mut add = |c: &Conv2d, hw: &mut [usize; 2]| {
            let (m, out) = conv_macs(c, *hw);
            total += m;
            *hw = out;
        };
        for layer in &self.features {
            match layer {
                MobileNetLayer::Conv(c) => add(&c.conv, &mut hw),
                MobileNetLayer::InvertedResidual(b) => {
                    if let Some(e) = &b.expand {
                        add(&e.conv, &mut hw);
                    }
                    add(&b.depthwise, &mut hw);
                    add(&b.project, &mut hw);
                }
            }
        }
        let [d_in, d_out] = self.classifier.weight.dims();
        total + (d_in * d_out) as u64
    }
}

impl ShuffleNetV2 {
    /// Multiply-accumulates of one `[H, W]` image (convolutions and the classifier).
    pub fn macs(&self, hw: [usize; 2]) -> u64 {
        let (mut total, hw) = conv_macs(&self.first_conv, hw);
        let mut hw = maxpool_size(hw);
        for block in &self.features {
            let input = hw;
            if let Some(p) = &block.proj {
                let (m, out) = conv_macs(&p.dw, input);
                total += m + conv_macs(&p.pw, out).0;
            }
            for c in [&block.main_pw, &block.main_dw, &block.main_pw_linear] {
                let (m, out) = conv_macs(c, hw);
                total += m;
                hw = out;
            }
        }
        total += conv_macs(&self.conv_last, hw).0;
        let [d_in, d_out] = self.classifier.weight.dims();
        total + (d_in * d_out) as u64
    }
}

impl Network {
    /// Multiply-accumulates of one `[H, W]` image: convolutions and linear layers (norms,
    /// activations and pooling excluded).
    pub fn macs(&self, hw: [usize; 2]) -> u64 {
        match self {
            Network::ResNet(m) => m.macs(hw),
            Network::MobileNetV2(m) => m.macs(hw),
            Network::ShuffleNetV2(m) => m.macs(hw),
        }
    }
}

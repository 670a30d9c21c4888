//! BatchNorm folded into the preceding convolution, for inference.
//!
//! In inference a BatchNorm is a per-channel affine map, `y = (x − μ)·γ/sqrt(σ² + eps) + β`,
//! which the convolution before it can absorb: with `s = γ / sqrt(σ² + eps)` per output
//! channel, the folded convolution has weight `W·s` and bias `(b − μ)·s + β` (PyTorch's
//! `torch.nn.utils.fusion.fuse_conv_bn_eval`). The norm becomes the identity, which saves a
//! pass over every activation. Outputs equal the unfolded model's within float rounding.
//!
//! Only for inference (`xbn eval`, `xbn predict`): a folded model has no running statistics
//! any more, so the estimation shift is measured on the unfolded model, and it cannot be
//! saved under PyTorch's names.

use burn::module::Param;
use burn::nn::Identity;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::{MobileNetLayer, MobileNetV2, Network, ResNet, ShuffleNetV2};
use crate::blocks::{ResidualBlock, Shortcut};
use crate::norm::Norm;

/// Folds `norm` into `conv` when it is a BatchNorm with running statistics (the norm then
/// becomes [`Norm::Identity`]); other norms are left alone. Returns whether it folded.
///
/// # Shapes
/// `conv` outputs the `C` channels `norm` normalises.
pub fn fold_conv_norm(conv: &mut Conv2d, norm: &mut Norm) -> bool {
    let Some(bn) = norm.as_batch_norm() else {
        return false;
    };
    let Ok(Some((running_mean, running_var, _))) = bn.running_stats() else {
        return false;
    };
    let weight = conv.weight.val();
    let device = weight.device();
    let c = bn.num_features;
    let (gamma, beta) = match (&bn.weight, &bn.bias) {
        (Some(w), Some(b)) => (w.val(), b.val()),
        _ => (Tensor::ones([c], &device), Tensor::zeros([c], &device)),
    };
    let mean = running_mean.value().to_device(&device);
    let scale = gamma.div(
        running_var
            .value()
            .to_device(&device)
            .add_scalar(bn.eps)
            .sqrt(),
    );
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([c], &device),
    };
    let folded_bias = bias.sub(mean).mul(scale.clone()).add(beta);
    conv.weight = Param::from_tensor(weight.mul(scale.reshape([c as i64, 1, 1, 1])));
    conv.bias = Some(Param::from_tensor(folded_bias));
    *norm = Norm::Identity(Identity::new());
    true
}

fn fold_shortcut(shortcut: &mut Option<Shortcut>) -> usize {
    match shortcut {
        Some(Shortcut::Projection(p)) => fold_conv_norm(&mut p.conv, &mut p.bn) as usize,
        _ => 0,
    }
}

impl ResNet {
    /// This model with every BatchNorm folded into its convolution (see the module
    /// documentation), and how many were folded. Use it on an inference model
    /// ([`Module::valid`](burn::module::Module::valid)).
    pub fn fold_batch_norms(mut self) -> (Self, usize) {
        let mut folded = fold_conv_norm(&mut self.conv1, &mut self.bn1) as usize;
        let blocks = self
            .layer1
            .iter_mut()
            .chain(self.layer2.iter_mut())
            .chain(self.layer3.iter_mut())
            .chain(self.layer4.iter_mut());
        for block in blocks {
            folded += match block {
                ResidualBlock::Basic(b) => {
                    fold_conv_norm(&mut b.conv1, &mut b.bn1) as usize
                        + fold_conv_norm(&mut b.conv2, &mut b.bn2) as usize
                        + fold_shortcut(&mut b.downsample)
                }
                ResidualBlock::Bottleneck(b) => {
                    fold_conv_norm(&mut b.conv1, &mut b.bn1) as usize
                        + fold_conv_norm(&mut b.conv2, &mut b.bn2) as usize
                        + fold_conv_norm(&mut b.conv3, &mut b.bn3) as usize
                        + fold_shortcut(&mut b.downsample)
                }
            };
        }
        (self, folded)
    }
}

impl MobileNetV2 {
    /// See [`ResNet::fold_batch_norms`].
    pub fn fold_batch_norms(mut self) -> (Self, usize) {
        let mut folded = 0;
        for layer in self.features.iter_mut() {
            match layer {
                MobileNetLayer::Conv(c) => {
                    folded += fold_conv_norm(&mut c.conv, &mut c.norm) as usize
                }
                MobileNetLayer::InvertedResidual(b) => {
                    if let Some(e) = &mut b.expand {
                        folded += fold_conv_norm(&mut e.conv, &mut e.norm) as usize;
                    }
                    folded += fold_conv_norm(&mut b.depthwise, &mut b.depthwise_norm) as usize;
                    folded += fold_conv_norm(&mut b.project, &mut b.project_norm) as usize;
                }
            }
        }
        (self, folded)
    }
}

impl ShuffleNetV2 {
    /// See [`ResNet::fold_batch_norms`].
    pub fn fold_batch_norms(mut self) -> (Self, usize) {
        let mut folded = fold_conv_norm(&mut self.first_conv, &mut self.first_norm) as usize;
        for b in self.features.iter_mut() {
            folded += fold_conv_norm(&mut b.main_pw, &mut b.main_pw_norm) as usize;
            folded += fold_conv_norm(&mut b.main_dw, &mut b.main_dw_norm) as usize;
            folded += fold_conv_norm(&mut b.main_pw_linear, &mut b.main_pw_linear_norm) as usize;
            if let Some(p) = &mut b.proj {
                folded += fold_conv_norm(&mut p.dw, &mut p.dw_norm) as usize;
                folded += fold_conv_norm(&mut p.pw, &mut p.pw_norm) as usize;
            }
        }
        folded += fold_conv_norm(&mut self.conv_last, &mut self.conv_last_norm) as usize;
        (self, folded)
    }
}

impl Network {
    /// See [`ResNet::fold_batch_norms`].
    pub fn fold_batch_norms(self) -> (Self, usize) {
        match self {
            Network::ResNet(m) => {
                let (m, n) = m.fold_batch_norms();
                (Network::ResNet(m), n)
            }
            Network::MobileNetV2(m) => {
                let (m, n) = m.fold_batch_norms();
                (Network::MobileNetV2(m), n)
            }
            Network::ShuffleNetV2(m) => {
                let (m, n) = m.fold_batch_norms();
                (Network::ShuffleNetV2(m), n)
            }
        }
    }
}

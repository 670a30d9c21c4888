//! MobileNetV2 (Sandler et al. 2018) as the XBNBlock authors build it
//! (`models/mobilenetV2.py`, `models/mobilenetV2_XBNBlock.py`, tonylins' layout).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::inspect::InitializeNow;
use crate::blocks::conv::conv;
use crate::norm::{Norm, NormConfig, NormError};

/// `(t, c, n, s)` of the inverted residual stages: expansion, output channels, repeats,
/// stride of the first repeat (Sandler et al. 2018, Table 2).
pub const INVERTED_RESIDUAL_SETTING: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// `ceil(x / 8) · 8`, the authors' `make_divisible` (numpy `ceil`, not torchvision's
/// round-to-nearest rule).
pub fn make_divisible(x: f64) -> usize {
    ((x / 8.0).ceil() * 8.0) as usize
}

/// Configuration of a [`MobileNetV2`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MobileNetV2Config {
    /// Width multiplier: channels `make_divisible(c · width_mult)` for the expanding
    /// stages (the first, `t = 1`, stage keeps 16); the stem always has 32 channels; the
    /// last 1×1 conv has `make_divisible(1280 · width_mult)` channels when `width_mult > 1`,
    /// else 1280.
    pub width_mult: f64,
    /// Input channels (3 for RGB).
    pub in_channels: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Norm after every depthwise 3×3 convolution (BN in the baseline; GN(16) in the
    /// authors' XBNBlock variant).
    pub depthwise_norm: NormConfig,
    /// Norm everywhere else (stem, expansions, projections, last 1×1): BatchNorm in both of
    /// the authors' variants.
    pub norm: NormConfig,
}

impl MobileNetV2Config {
    /// The authors' baseline (`mobilenet_v2`): BatchNorm everywhere, width 1.0,
    /// 1000 classes, RGB.
    pub fn new() -> Self {
        Self {
            width_mult: 1.0,
            in_channels: 3,
            num_classes: 1000,
            depthwise_norm: NormConfig::batch(),
            norm: NormConfig::batch(),
        }
    }

    /// The authors' XBNBlock variant (`mobilenet_v2_XBNBlock`): `bfn` after every
    /// depthwise convolution (the scripts use GN with 16 groups), BN elsewhere.
    pub fn xbn(bfn: NormConfig) -> Self {
        Self {
            depthwise_norm: bfn,
            ..Self::new()
        }
    }

    /// Sets the width multiplier.
    pub fn with_width_mult(mut self, width_mult: f64) -> Self {
        self.width_mult = width_mult;
        self
    }

    /// Sets the number of classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets the input channels.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Channels of the last 1×1 convolution.
    pub fn last_channel(&self) -> usize {
        if self.width_mult > 1.0 {
            make_divisible(1280.0 * self.width_mult)
        } else {
            1280
        }
    }

    /// Builds the network with the authors' initialisation: convolutions
    /// N(0, sqrt(2 / (k·k·out_channels))) (a depthwise conv's `out_channels` is its width),
    /// norms γ = 1, β = 0, the classifier N(0, 0.01) with zero bias.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a non-positive or non-finite `width_mult` or zero
    /// channels/classes, [`ModelError::Norm`] when a norm cannot be built.
    pub fn init(&self, device: &Device) -> Result<MobileNetV2, ModelError> {
        Ok(self.init_lazy(device)?.initialized())
    }

    /// Like [`MobileNetV2Config::init`] without drawing the weights yet (see
    /// [`NetworkConfig::init_lazy`](super::NetworkConfig::init_lazy)).
    ///
    /// # Errors
    /// See [`MobileNetV2Config::init`].
    pub fn init_lazy(&self, device: &Device) -> Result<MobileNetV2, ModelError> {
        if !(self.width_mult.is_finite() && self.width_mult > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "width_mult must be > 0, got {}",
                self.width_mult
            )));
        }
        if self.in_channels == 0 || self.num_classes == 0 {
            return Err(ModelError::InvalidConfig(
                "in_channels and num_classes must be at least 1".into(),
            ));
        }
        let stem_channels = 32;
        let mut features = vec![MobileNetLayer::Conv(ConvNormAct::new(
            self.in_channels,
            stem_channels,
            3,
            2,
            &self.norm,
            device,
        )?)];
        let mut input = stem_channels;
        for (t, c, n, s) in INVERTED_RESIDUAL_SETTING {
            let output = if t > 1 {
                make_divisible(c as f64 * self.width_mult)
            } else {
                c
            };
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                features.push(MobileNetLayer::InvertedResidual(InvertedResidual::new(
                    input, output, stride, t, self, device,
                )?));
                input = output;
            }
        }
        let last = self.last_channel();
        features.push(MobileNetLayer::Conv(ConvNormAct::new(
            input, last, 1, 1, &self.norm, device,
        )?));
        let classifier = LinearConfig::new(last, self.num_classes)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            })
            .init(device);
        let classifier = zero_bias(classifier);
        Ok(MobileNetV2 {
            features,
            classifier,
            in_channels: self.in_channels,
        })
    }
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the bias of a linear layer to zero (the authors' `m.bias.data.zero_()`).
pub(crate) fn zero_bias(mut linear: Linear) -> Linear {
    if let Some(bias) = linear.bias.take() {
        let zeros = Tensor::zeros(bias.dims(), &bias.device());
        linear.bias = Some(bias.map(|_| zeros));
    }
    linear
}

/// Convolution, norm, ReLU6 (the authors' `conv_bn` / `conv_1x1_bn`, an `nn.Sequential`
/// whose indices 0 and 1 are the conv and the norm).
#[derive(Module, Debug)]
pub struct ConvNormAct {
    /// Convolution (index 0).
    pub conv: Conv2d,
    /// Norm (index 1).
    pub norm: Norm,
}

impl ConvNormAct {
    fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        norm: &NormConfig,
        device: &Device,
    ) -> Result<Self, NormError> {
        Ok(Self {
            conv: conv(input, output, kernel, stride, 1, device),
            norm: norm.init(output, device)?,
        })
    }

    /// `[N, in, H, W]` → `[N, out, H / stride, W / stride]`
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        Ok(relu6(self.norm.try_forward(self.conv.forward(x))?))
    }
}

/// The inverted residual block: (1×1 expansion → norm → ReLU6, when `t > 1`) → depthwise
/// 3×3 (stride) → depthwise norm → ReLU6 → 1×1 projection → norm, plus the input when the
/// stride is 1 and the channels do not change (no activation after the addition).
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion and its norm (`None` when `t = 1`).
    pub expand: Option<ConvNormAct>,
    /// Depthwise 3×3 convolution.
    pub depthwise: Conv2d,
    /// Norm after the depthwise convolution (the XBNBlock's batch-free norm).
    pub depthwise_norm: Norm,
    /// 1×1 linear projection.
    pub project: Conv2d,
    /// Norm after the projection.
    pub project_norm: Norm,
    /// Whether the input is added to the output.
    pub use_res_connect: bool,
}

impl InvertedResidual {
    fn new(
        input: usize,
        output: usize,
        stride: usize,
        expand_ratio: usize,
        config: &MobileNetV2Config,
        device: &Device,
    ) -> Result<Self, NormError> {
        let hidden = input * expand_ratio;
        let expand = (expand_ratio != 1)
            .then(|| ConvNormAct::new(input, hidden, 1, 1, &config.norm, device))
            .transpose()?;
        Ok(Self {
            expand,
            depthwise: conv(hidden, hidden, 3, stride, hidden, device),
            depthwise_norm: config.depthwise_norm.init(hidden, device)?,
            project: conv(hidden, output, 1, 1, 1, device),
            project_norm: config.norm.init(output, device)?,
            use_res_connect: stride == 1 && input == output,
        })
    }

    /// `[N, in, H, W]` → `[N, out, H / stride, W / stride]`
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        let mut out = x.clone();
        if let Some(expand) = &self.expand {
            out = expand.try_forward(out)?;
        }
        let out = relu6(
            self.depthwise_norm
                .try_forward(self.depthwise.forward(out))?,
        );
        let out = self.project_norm.try_forward(self.project.forward(out))?;
        Ok(if self.use_res_connect {
            out.add(x)
        } else {
            out
        })
    }
}

/// One layer of `features`.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum MobileNetLayer {
    /// The stem or the last 1×1 convolution.
    Conv(ConvNormAct),
    /// An inverted residual block.
    InvertedResidual(InvertedResidual),
}

/// MobileNetV2: `features` (stem conv 3×3 stride 2 → 17 inverted residual blocks → 1×1
/// conv), the spatial mean, and a linear `classifier` (no dropout, as the authors' code).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// Stem, inverted residual blocks and last 1×1 conv, in order.
    pub features: Vec<MobileNetLayer>,
    /// Classifier.
    pub classifier: Linear,
    /// Input channels the network was built for.
    pub in_channels: usize,
}

impl MobileNetV2 {
    /// Class logits.
    ///
    /// # Shapes
    /// `[N, in_channels, H, W]` → `[N, num_classes]` (any `H, W ≥ 1`; the authors train at
    /// 224×224).
    ///
    /// # Errors
    /// [`ModelError::InputChannels`] for a wrong channel count, [`ModelError::Norm`] from a
    /// norm.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        super::check_input_channels(&x, self.in_channels)?;
        let mut x = x;
        for layer in &self.features {
            x = match layer {
                MobileNetLayer::Conv(c) => c.try_forward(x)?,
                MobileNetLayer::InvertedResidual(b) => b.try_forward(x)?,
            };
        }
        let x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        Ok(self.classifier.forward(x))
    }

    /// Like [`MobileNetV2::try_forward`], panicking with the error's message.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

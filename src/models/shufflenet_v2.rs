//! ShuffleNetV2 (Ma et al. 2018) in the Megvii layout the XBNBlock authors use
//! (`models/shuffleV2.py`, `models/shuffleV2_XBNBlock.py`), not torchvision's.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::inspect::InitializeNow;
use crate::blocks::conv::conv_with_std;
use crate::norm::{Norm, NormConfig, NormError};

/// Width of a ShuffleNetV2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShuffleNetSize {
    /// 0.5×: stages of 48, 96, 192 channels.
    #[serde(rename = "0.5x")]
    X0_5,
    /// 1.0×: stages of 116, 232, 464 channels.
    #[serde(rename = "1.0x")]
    X1_0,
    /// 1.5×: stages of 176, 352, 704 channels.
    #[serde(rename = "1.5x")]
    X1_5,
    /// 2.0×: stages of 244, 488, 976 channels, 2048 final, dropout 0.2.
    #[serde(rename = "2.0x")]
    X2_0,
}

impl ShuffleNetSize {
    /// Every size.
    pub const ALL: [ShuffleNetSize; 4] = [Self::X0_5, Self::X1_0, Self::X1_5, Self::X2_0];

    /// `stage_out_channels` of the Megvii code: stem, three stages, last 1×1 conv.
    pub fn channels(self) -> [usize; 5] {
        match self {
            Self::X0_5 => [24, 48, 96, 192, 1024],
            Self::X1_0 => [24, 116, 232, 464, 1024],
            Self::X1_5 => [24, 176, 352, 704, 1024],
            Self::X2_0 => [24, 244, 488, 976, 2048],
        }
    }

    /// GroupNorm group count of the authors' XBNBlock scripts: 8 at 0.5× and 1.5×, 29 at
    /// 1.0× (58, 116 and 232 are multiples of 29, not of 8). 2.0× has no script: its
    /// widths 122, 244, 488 are multiples of 61 (and not of 8), so xbn uses 61, clamped to
    /// 24 on the 24-channel projection, as 29 is at 1.0×.
    pub fn default_gn_groups(self) -> usize {
        match self {
            Self::X1_0 => 29,
            Self::X2_0 => 61,
            _ => 8,
        }
    }

    /// `0.5x`, `1.0x`, `1.5x`, `2.0x`.
    pub fn name(self) -> &'static str {
        match self {
            Self::X0_5 => "0.5x",
            Self::X1_0 => "1.0x",
            Self::X1_5 => "1.5x",
            Self::X2_0 => "2.0x",
        }
    }
}

impl fmt::Display for ShuffleNetSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShuffleNetSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|z| z.name() == s)
            .ok_or_else(|| format!("unknown ShuffleNetV2 size '{s}': use 0.5x, 1.0x, 1.5x or 2.0x"))
    }
}

/// Number of blocks of the three stages.
pub const STAGE_REPEATS: [usize; 3] = [4, 8, 4];

/// Configuration of a [`ShuffleNetV2`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShuffleNetV2Config {
    /// Width.
    pub size: ShuffleNetSize,
    /// Input channels (3 for RGB).
    pub in_channels: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Norm right after every depthwise convolution (main and projection branches):
    /// BN in the baseline, GN in the authors' XBNBlock variant.
    pub depthwise_norm: NormConfig,
    /// Norm everywhere else (stem, 1×1 convolutions, last conv): BatchNorm in both of the
    /// authors' variants.
    pub norm: NormConfig,
}

impl ShuffleNetV2Config {
    /// The authors' baseline (`shuffleV2_{0D5,1D0,1D5,2D0}x`): BN everywhere, 1000
    /// classes, RGB.
    pub fn new(size: ShuffleNetSize) -> Self {
        Self {
            size,
            in_channels: 3,
            num_classes: 1000,
            depthwise_norm: NormConfig::batch(),
            norm: NormConfig::batch(),
        }
    }

    /// The authors' XBNBlock variant: `bfn` after every depthwise convolution (the
    /// scripts use GN with [`ShuffleNetSize::default_gn_groups`] groups, clamped to the
    /// channels: the 24-channel projection of 1.0× gets 24 groups).
    pub fn xbn(size: ShuffleNetSize, bfn: NormConfig) -> Self {
        Self {
            depthwise_norm: bfn,
            ..Self::new(size)
        }
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

    /// Builds the network with the authors' initialisation: the stem convolution
    /// N(0, 0.01), every other convolution N(0, 1 / (in_channels / groups)) (so depthwise
    /// convolutions get std 1), BatchNorm γ = 1, β = 1e-4, GroupNorm γ = 1, β = 0, the
    /// classifier N(0, 0.01) without bias.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero channels or classes, [`ModelError::Norm`]
    /// when a norm cannot be built.
    pub fn init(&self, device: &Device) -> Result<ShuffleNetV2, ModelError> {
        Ok(self.init_lazy(device)?.initialized())
    }

    /// Like [`ShuffleNetV2Config::init`] without drawing the weights yet (see
    /// [`NetworkConfig::init_lazy`](super::NetworkConfig::init_lazy)).
    ///
    /// # Errors
    /// See [`ShuffleNetV2Config::init`].
    pub fn init_lazy(&self, device: &Device) -> Result<ShuffleNetV2, ModelError> {
        if self.in_channels == 0 || self.num_classes == 0 {
            return Err(ModelError::InvalidConfig(
                "in_channels and num_classes must be at least 1".into(),
            ));
        }
        let channels = self.size.channels();
        let first = channels[0];
        let first_conv = conv_with_std(self.in_channels, first, 3, 2, 1, 0.01, device);
        let first_norm = shuffle_norm(&self.norm, first, device)?;
        let mut features = Vec::new();
        let mut input = first;
        for (stage, &repeats) in STAGE_REPEATS.iter().enumerate() {
            let output = channels[stage + 1];
            for i in 0..repeats {
                let block = if i == 0 {
                    ShuffleBlock::new(input, output, output / 2, 2, self, device)?
                } else {
                    ShuffleBlock::new(input / 2, output, output / 2, 1, self, device)?
                };
                features.push(block);
                input = output;
            }
        }
        let last = channels[4];
        let conv_last = pointwise(input, last, device);
        let conv_last_norm = shuffle_norm(&self.norm, last, device)?;
        let classifier = LinearConfig::new(last, self.num_classes)
            .with_bias(false)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            })
            .init(device);
        Ok(ShuffleNetV2 {
            first_conv,
            first_norm,
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            features,
            conv_last,
            conv_last_norm,
            dropout: (self.size == ShuffleNetSize::X2_0).then(|| DropoutConfig::new(0.2).init()),
            classifier,
            in_channels: self.in_channels,
        })
    }
}

/// A norm with the Megvii initialisation: BatchNorm β = 1e-4 (`nn.init.constant_(bias,
/// 0.0001)`), other norms as built.
fn shuffle_norm(config: &NormConfig, channels: usize, device: &Device) -> Result<Norm, NormError> {
    let mut norm = config.init(channels, device)?;
    if let Norm::Batch(bn) = &mut norm
        && let Some(bias) = bn.bias.take()
    {
        let value = Tensor::full(bias.dims(), 1e-4, &bias.device());
        bn.bias = Some(Param::from_tensor(value));
    }
    Ok(norm)
}

/// 1×1 convolution with std `1 / in_channels`.
fn pointwise(input: usize, output: usize, device: &Device) -> Conv2d {
    conv_with_std(input, output, 1, 1, 1, 1.0 / input as f64, device)
}

/// 3×3 depthwise convolution with std 1 (`1 / (in_channels / groups)`).
fn depthwise(channels: usize, stride: usize, device: &Device) -> Conv2d {
    conv_with_std(channels, channels, 3, stride, channels, 1.0, device)
}

/// A ShuffleNetV2 unit.
///
/// - stride 2: `cat(branch_proj(x), branch_main(x))`, both branches at stride 2;
/// - stride 1: the channels are split by the Megvii channel shuffle — even-indexed channels
///   pass through, odd-indexed ones go through `branch_main` — then `cat(pass, main)`.
///
/// `branch_main`: 1×1 (in → mid) → BN → ReLU → depthwise 3×3 → **norm** → 1×1
/// (mid → out − in) → BN → ReLU. `branch_proj`: depthwise 3×3 → **norm** → 1×1 → BN → ReLU.
/// No ReLU after the depthwise norms.
#[derive(Module, Debug)]
pub struct ShuffleBlock {
    /// Main branch 1×1 (`branch_main.0`).
    pub main_pw: Conv2d,
    /// Its norm (`branch_main.1`).
    pub main_pw_norm: Norm,
    /// Main branch depthwise conv (`branch_main.3`).
    pub main_dw: Conv2d,
    /// The depthwise norm (`branch_main.4`): the XBNBlock's batch-free norm.
    pub main_dw_norm: Norm,
    /// Main branch linear 1×1 (`branch_main.5`).
    pub main_pw_linear: Conv2d,
    /// Its norm (`branch_main.6`).
    pub main_pw_linear_norm: Norm,
    /// Projection branch of a stride-2 unit (`branch_proj.*`).
    pub proj: Option<ShuffleProj>,
}

/// The projection branch of a stride-2 [`ShuffleBlock`].
#[derive(Module, Debug)]
pub struct ShuffleProj {
    /// Depthwise conv (`branch_proj.0`).
    pub dw: Conv2d,
    /// The depthwise norm (`branch_proj.1`).
    pub dw_norm: Norm,
    /// 1×1 conv (`branch_proj.2`).
    pub pw: Conv2d,
    /// Its norm (`branch_proj.3`).
    pub pw_norm: Norm,
}

impl ShuffleBlock {
    fn new(
        input: usize,
        output: usize,
        mid: usize,
        stride: usize,
        config: &ShuffleNetV2Config,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let main_out = output
            .checked_sub(input)
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                ModelError::InvalidConfig(format!("ShuffleNetV2 unit {input} → {output} channels"))
            })?;
        let proj = (stride == 2)
            .then(|| -> Result<ShuffleProj, NormError> {
                Ok(ShuffleProj {
                    dw: depthwise(input, 2, device),
                    dw_norm: shuffle_norm(&config.depthwise_norm, input, device)?,
                    pw: pointwise(input, input, device),
                    pw_norm: shuffle_norm(&config.norm, input, device)?,
                })
            })
            .transpose()?;
        Ok(Self {
            main_pw: pointwise(input, mid, device),
            main_pw_norm: shuffle_norm(&config.norm, mid, device)?,
            main_dw: depthwise(mid, stride, device),
            main_dw_norm: shuffle_norm(&config.depthwise_norm, mid, device)?,
            main_pw_linear: pointwise(mid, main_out, device),
            main_pw_linear_norm: shuffle_norm(&config.norm, main_out, device)?,
            proj,
        })
    }

    fn main(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        let x = relu(self.main_pw_norm.try_forward(self.main_pw.forward(x))?);
        let x = self.main_dw_norm.try_forward(self.main_dw.forward(x))?;
        Ok(relu(
            self.main_pw_linear_norm
                .try_forward(self.main_pw_linear.forward(x))?,
        ))
    }

    /// `[N, C, H, W]` → `[N, out, H / stride, W / stride]`
    ///
    /// # Errors
    /// A [`NormError`] from a norm.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        match &self.proj {
            Some(p) => {
                let proj = p.dw_norm.try_forward(p.dw.forward(x.clone()))?;
                let proj = relu(p.pw_norm.try_forward(p.pw.forward(proj))?);
                Ok(Tensor::cat(vec![proj, self.main(x)?], 1))
            }
            None => {
                let (pass, main) = channel_split(x);
                Ok(Tensor::cat(vec![pass, self.main(main)?], 1))
            }
        }
    }
}

/// The Megvii channel shuffle of a stride-1 unit: `[N, C, H, W]` → (even channels, odd
/// channels), each `[N, C / 2, H, W]`.
///
/// `C` must be even (every ShuffleNetV2 unit has an even channel count: the stage widths are
/// even and the unit is built from two equal halves); with an odd `C` the reshape fails.
pub fn channel_split(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [n, c, h, w] = x.dims();
    let pairs = x.reshape([n, c / 2, 2, h * w]);
    let even = pairs.clone().narrow(2, 0, 1).reshape([n, c / 2, h, w]);
    let odd = pairs.narrow(2, 1, 1).reshape([n, c / 2, h, w]);
    (even, odd)
}

/// ShuffleNetV2 (Megvii layout): 3×3 stride-2 stem → BN → ReLU → 3×3 max-pool → 16 units
/// in stages of 4, 8, 4 → 1×1 conv → BN → ReLU → global average pool → (dropout 0.2 at
/// 2.0×) → bias-free linear classifier.
#[derive(Module, Debug)]
pub struct ShuffleNetV2 {
    /// Stem convolution (`first_conv.0`).
    pub first_conv: Conv2d,
    /// Stem norm (`first_conv.1`).
    pub first_norm: Norm,
    /// Max-pool 3×3, stride 2.
    pub maxpool: MaxPool2d,
    /// The 16 units.
    pub features: Vec<ShuffleBlock>,
    /// Last 1×1 convolution (`conv_last.0`).
    pub conv_last: Conv2d,
    /// Its norm (`conv_last.1`).
    pub conv_last_norm: Norm,
    /// Dropout 0.2 (2.0× only).
    pub dropout: Option<Dropout>,
    /// Bias-free classifier (`classifier.0`).
    pub classifier: Linear,
    /// Input channels the network was built for.
    pub in_channels: usize,
}

impl ShuffleNetV2 {
    /// Class logits. The authors pool with `AvgPool2d(7)` (224×224 inputs only); xbn
    /// averages over the whole feature map, which is the same at 224×224 and works for any
    /// input size.
    ///
    /// # Shapes
    /// `[N, in_channels, H, W]` → `[N, num_classes]`
    ///
    /// # Errors
    /// [`ModelError::InputChannels`] for a wrong channel count, [`ModelError::Norm`] from a
    /// norm.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        super::check_input_channels(&x, self.in_channels)?;
        let x = relu(self.first_norm.try_forward(self.first_conv.forward(x))?);
        let mut x = self.maxpool.forward(x);
        for block in &self.features {
            x = block.try_forward(x)?;
        }
        let x = relu(self.conv_last_norm.try_forward(self.conv_last.forward(x))?);
        let mut x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        if let Some(d) = &self.dropout {
            x = d.forward(x);
        }
        Ok(self.classifier.forward(x))
    }

    /// Like [`ShuffleNetV2::try_forward`], panicking with the error's message.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

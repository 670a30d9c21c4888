//! ResNets and ResNeXts: one type for the CIFAR ResNets of He et al. (2016, §4.2), the
//! torchvision/authors' ImageNet ResNets and ResNeXts, and ResNets with a CIFAR stem.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::inspect::InitializeNow;
use crate::blocks::conv::conv;
use crate::blocks::{BasicBlock, BlockKind, Bottleneck, NormPlan, ResidualBlock, ShortcutKind};
use crate::norm::Norm;

/// The first convolution of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 3×3 convolution, stride 1, no max-pool (CIFAR, He et al. §4.2).
    Cifar,
    /// 7×7 convolution, stride 2, then 3×3 max-pool with stride 2 (ImageNet, torchvision).
    ImageNet,
}

/// Configuration of a [`ResNet`].
///
/// Use the presets ([`ResNetConfig::cifar`], [`ResNetConfig::resnet18_cifar`], ...) and the
/// `with_*` setters; every field is public and serialisable (it is written to a run's
/// `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Block type of every stage.
    pub block: BlockKind,
    /// Number of blocks per stage (`layer1`, `layer2`, ...); 1 to 4 stages.
    pub layers: Vec<usize>,
    /// `planes` of each stage (output channels / expansion), e.g. `[16, 32, 64]`.
    pub planes: Vec<usize>,
    /// Output channels of the stem convolution.
    pub stem_channels: usize,
    /// Stem type.
    pub stem: Stem,
    /// Shortcut of the blocks that change shape.
    pub shortcut: ShortcutKind,
    /// Input channels (3 for RGB, 1 for MNIST).
    pub in_channels: usize,
    /// Number of classes of the classifier.
    pub num_classes: usize,
    /// Groups of the Bottleneck 3×3 convolution (ResNeXt cardinality), default 1.
    pub groups: usize,
    /// Width per group of the Bottleneck 3×3 convolution, default 64.
    pub width_per_group: usize,
    /// The norm of every slot.
    pub norm_plan: NormPlan,
}

impl ResNetConfig {
    /// The CIFAR ResNet of depth `6n + 2` (He et al. 2016, §4.2): 3×3 stem with 16
    /// channels, three stages of `n` BasicBlocks with 16, 32, 64 channels, option-A
    /// shortcuts. Depths 20, 32, 44, 56, 110, 1202 are the paper's.
    ///
    /// # Errors
    /// [`ModelError::InvalidDepth`] when `depth` is not `6n + 2` with `n ≥ 1`.
    pub fn cifar(depth: usize) -> Result<Self, ModelError> {
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            return Err(ModelError::InvalidDepth(depth));
        }
        let n = (depth - 2) / 6;
        Ok(Self {
            block: BlockKind::Basic,
            layers: vec![n; 3],
            planes: vec![16, 32, 64],
            stem_channels: 16,
            stem: Stem::Cifar,
            shortcut: ShortcutKind::A,
            in_channels: 3,
            num_classes: 10,
            groups: 1,
            width_per_group: 64,
            norm_plan: NormPlan::default(),
        })
    }

    fn torchvision(block: BlockKind, layers: [usize; 4], stem: Stem, num_classes: usize) -> Self {
        Self {
            block,
            layers: layers.to_vec(),
            planes: vec![64, 128, 256, 512],
            stem_channels: 64,
            stem,
            shortcut: ShortcutKind::B,
            in_channels: 3,
            num_classes,
            groups: 1,
            width_per_group: 64,
            norm_plan: NormPlan::default(),
        }
    }

    /// The ImageNet ResNet of `depth` 18, 34 (BasicBlock), 50, 101 or 152 (Bottleneck,
    /// stride on the 3×3): 7×7 stride-2 stem, 3×3 max-pool, stages of `[2, 2, 2, 2]`,
    /// `[3, 4, 6, 3]`, `[3, 4, 6, 3]`, `[3, 4, 23, 3]`, `[3, 8, 36, 3]` blocks, option-B
    /// shortcuts, adaptive average pooling, 1000 classes (torchvision's `resnetXX`, the
    /// authors' `models/resnet.py`). ResNet-50: 25,557,032 parameters.
    ///
    /// # Errors
    /// [`ModelError::InvalidDepth`] for another depth.
    pub fn imagenet(depth: usize) -> Result<Self, ModelError> {
        let (block, layers) = match depth {
            18 => (BlockKind::Basic, [2, 2, 2, 2]),
            34 => (BlockKind::Basic, [3, 4, 6, 3]),
            50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
            101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
            152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
            _ => return Err(ModelError::InvalidDepth(depth)),
        };
        Ok(Self::torchvision(block, layers, Stem::ImageNet, 1000))
    }

    /// ResNeXt-50 32×4d (Xie et al. 2017; torchvision `resnext50_32x4d`): ResNet-50 with
    /// 32 groups of width 4 in the 3×3 convolutions (widths 128/256/512/1024).
    /// 25,028,904 parameters.
    pub fn resnext50_32x4d() -> Self {
        let mut c = Self::torchvision(BlockKind::Bottleneck, [3, 4, 6, 3], Stem::ImageNet, 1000);
        c.groups = 32;
        c.width_per_group = 4;
        c
    }

    /// ResNeXt-101 32×8d: `[3, 4, 23, 3]` blocks, 32 groups of width 8.
    /// 88,791,336 parameters.
    pub fn resnext101_32x8d() -> Self {
        let mut c = Self::torchvision(BlockKind::Bottleneck, [3, 4, 23, 3], Stem::ImageNet, 1000);
        c.groups = 32;
        c.width_per_group = 8;
        c
    }

    /// ResNet-18 (BasicBlock, `[2, 2, 2, 2]`) with a CIFAR stem (3×3 stride-1 conv, no
    /// max-pool), option-B shortcuts and 10 classes: 11,173,962 parameters.
    pub fn resnet18_cifar() -> Self {
        Self::torchvision(BlockKind::Basic, [2, 2, 2, 2], Stem::Cifar, 10)
    }

    /// ResNet-34 (BasicBlock, `[3, 4, 6, 3]`) with a CIFAR stem and 10 classes.
    pub fn resnet34_cifar() -> Self {
        Self::torchvision(BlockKind::Basic, [3, 4, 6, 3], Stem::Cifar, 10)
    }

    /// ResNet-50 (Bottleneck, `[3, 4, 6, 3]`) with a CIFAR stem and 10 classes.
    pub fn resnet50_cifar() -> Self {
        Self::torchvision(BlockKind::Bottleneck, [3, 4, 6, 3], Stem::Cifar, 10)
    }

    /// Sets the input channels.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Sets the number of classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets the norm plan (e.g. `NormPlan::new(Placement::XbnP2, NormConfig::group(64))`).
    pub fn with_norm_plan(mut self, plan: NormPlan) -> Self {
        self.norm_plan = plan;
        self
    }

    /// Sets the shortcut option.
    pub fn with_shortcut(mut self, shortcut: ShortcutKind) -> Self {
        self.shortcut = shortcut;
        self
    }

    /// Sets the stem.
    pub fn with_stem(mut self, stem: Stem) -> Self {
        self.stem = stem;
        self
    }

    /// Channels entering the classifier.
    pub fn feature_channels(&self) -> usize {
        self.planes.last().copied().unwrap_or(self.stem_channels) * self.block.expansion()
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.layers.is_empty() || self.layers.len() > 4 || self.layers.len() != self.planes.len()
        {
            return Err(ModelError::InvalidConfig(format!(
                "a ResNet has 1 to 4 stages with one `planes` entry each; got layers {:?}, planes {:?}",
                self.layers, self.planes
            )));
        }
        for (name, value) in [
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("stem_channels", self.stem_channels),
            ("groups", self.groups),
            ("width_per_group", self.width_per_group),
        ] {
            if value == 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        if self.planes.contains(&0) || self.layers.contains(&0) {
            return Err(ModelError::InvalidConfig(
                "every stage needs at least one block and one plane".into(),
            ));
        }
        if self.block == BlockKind::Bottleneck {
            for &p in &self.planes {
                let width = Bottleneck::width(p, self.groups, self.width_per_group);
                if width == 0 {
                    return Err(ModelError::InvalidConfig(format!(
                        "Bottleneck width int({p}·{}/64)·{} is 0: raise width_per_group or planes",
                        self.width_per_group, self.groups
                    )));
                }
            }
        } else if self.groups != 1 || self.width_per_group != 64 {
            return Err(ModelError::InvalidConfig(
                "BasicBlock only supports groups = 1 and width_per_group = 64 (as torchvision)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device` with the authors' initialisation: convolutions
    /// N(0, sqrt(2 / (k·k·out_channels))), norms γ = 1, β = 0, the classifier as PyTorch's
    /// `nn.Linear` (U(±1/sqrt(fan_in)) for weight and bias).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for an inconsistent configuration and
    /// [`ModelError::Norm`] when a norm cannot be built (e.g. groups that do not divide
    /// a layer's channels).
    pub fn init(&self, device: &Device) -> Result<ResNet, ModelError> {
        Ok(self.init_lazy(device)?.initialized())
    }

    /// Like [`ResNetConfig::init`] without drawing the weights yet (see
    /// [`NetworkConfig::init_lazy`](super::NetworkConfig::init_lazy)).
    ///
    /// # Errors
    /// See [`ResNetConfig::init`].
    pub fn init_lazy(&self, device: &Device) -> Result<ResNet, ModelError> {
        self.validate()?;
        let (kernel, stride) = match self.stem {
            Stem::Cifar => (3, 1),
            Stem::ImageNet => (7, 2),
        };
        let conv1 = conv(
            self.in_channels,
            self.stem_channels,
            kernel,
            stride,
            1,
            device,
        );
        let bn1 = self.norm_plan.stem.init(self.stem_channels, device)?;
        let maxpool = (self.stem == Stem::ImageNet).then(|| {
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init()
        });

        let mut in_channels = self.stem_channels;
        let mut stages: Vec<Vec<ResidualBlock>> = Vec::new();
        for (i, (&blocks, &planes)) in self.layers.iter().zip(&self.planes).enumerate() {
            let first_stride = if i == 0 { 1 } else { 2 };
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 { first_stride } else { 1 };
                let block = self.block_init(in_channels, planes, stride, device)?;
                in_channels = planes * self.block.expansion();
                stage.push(block);
            }
            stages.push(stage);
        }
        stages.resize_with(4, Vec::new);
        let mut stages = stages.into_iter();
        let mut next = || stages.next().expect("four stages");

        Ok(ResNet {
            conv1,
            bn1,
            maxpool,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: pytorch_linear(self.feature_channels(), self.num_classes, device),
            in_channels: self.in_channels,
        })
    }

    fn block_init(
        &self,
        in_channels: usize,
        planes: usize,
        stride: usize,
        device: &Device,
    ) -> Result<ResidualBlock, ModelError> {
        Ok(match self.block {
            BlockKind::Basic => ResidualBlock::Basic(BasicBlock::new(
                in_channels,
                planes,
                stride,
                self.shortcut,
                &self.norm_plan,
                device,
            )?),
            BlockKind::Bottleneck => ResidualBlock::Bottleneck(Bottleneck::new(
                in_channels,
                planes,
                stride,
                self.groups,
                self.width_per_group,
                self.shortcut,
                &self.norm_plan,
                device,
            )?),
        })
    }
}

/// `nn.Linear(d_input, d_output)` as PyTorch initialises it: weight and bias drawn from
/// U(−1/sqrt(d_input), 1/sqrt(d_input)). Burn stores the weight `[d_input, d_output]`;
/// [`crate::checkpoint`] transposes it to PyTorch's `[d_output, d_input]` and back.
pub(crate) fn pytorch_linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    let bound = 1.0 / (d_input as f64).sqrt();
    LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Uniform {
            min: -bound,
            max: bound,
        })
        .init(device)
}

/// A residual network: stem (`conv1`, `bn1`, optional `maxpool`), up to four stages
/// `layer1..layer4` of residual blocks (the first block of stages 2–4 has stride 2),
/// global average pooling and a linear classifier `fc`.
///
/// Module paths follow torchvision (`layer2.0.bn1.running_mean`, `fc.weight`).
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem norm.
    pub bn1: Norm,
    /// Max-pool of the ImageNet stem.
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1 (stride 1).
    pub layer1: Vec<ResidualBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<ResidualBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<ResidualBlock>,
    /// Stage 4 (stride 2; empty for three-stage CIFAR ResNets).
    pub layer4: Vec<ResidualBlock>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
    /// Input channels the network was built for.
    pub in_channels: usize,
}

impl ResNet {
    /// Computes class logits.
    ///
    /// # Shapes
    /// - input: `[N, in_channels, H, W]`, any `H, W ≥ 1` (global pooling)
    /// - output: `[N, num_classes]`
    ///
    /// # Panics
    /// With the message of the error [`ResNet::try_forward`] would return.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Computes class logits, returning a typed error for a wrong input.
    ///
    /// # Errors
    /// [`ModelError::InputChannels`] when dimension 1 is not `in_channels`, and
    /// [`ModelError::Norm`] from a norm (e.g. one value per channel while training).
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        super::check_input_channels(&x, self.in_channels)?;
        let mut x = relu(self.bn1.try_forward(self.conv1.forward(x))?);
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        for block in self.blocks() {
            x = block.try_forward(x)?;
        }
        let x = self.avgpool.forward(x).flatten::<2>(1, 3);
        Ok(self.fc.forward(x))
    }

    /// Every residual block, in forward order.
    pub fn blocks(&self) -> impl Iterator<Item = &ResidualBlock> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }
}

//! The multilayer perceptron of the paper's §4 experiments.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::InitializeNow;
use crate::norm::{Norm, NormConfig, NormError};

/// Which norms the MLP's hidden layers get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpNorms {
    /// BatchNorm after every hidden linear layer.
    Bn,
    /// GNBN (paper §4.3): GroupNorm in the odd-numbered norm layers (1, 3, 5, ... counted
    /// from 1), BatchNorm in the even ones.
    Gnbn,
    /// No normalization.
    None,
}

impl MlpNorms {
    /// All variants.
    pub const ALL: [MlpNorms; 3] = [MlpNorms::Bn, MlpNorms::Gnbn, MlpNorms::None];

    /// `bn`, `gnbn`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            MlpNorms::Bn => "bn",
            MlpNorms::Gnbn => "gnbn",
            MlpNorms::None => "none",
        }
    }

    /// The norm of hidden layer `layer` (from 1).
    pub fn norm(self, layer: usize, gn_groups: usize) -> NormConfig {
        match self {
            MlpNorms::Bn => NormConfig::batch(),
            MlpNorms::Gnbn if layer % 2 == 1 => NormConfig::group(gn_groups),
            MlpNorms::Gnbn => NormConfig::batch(),
            MlpNorms::None => NormConfig::identity(),
        }
    }
}

impl fmt::Display for MlpNorms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MlpNorms {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown MLP norms '{s}': use bn, gnbn or none"))
    }
}

/// One hidden layer: `Linear → norm → ReLU`.
#[derive(Module, Debug)]
pub struct MlpLayer {
    /// `Linear(in, width)`.
    pub linear: Linear,
    /// Norm over the `width` features.
    pub norm: Norm,
}

/// `flatten → [Linear → norm → ReLU] × depth → Linear` (paper §4; depth and width are
/// xbn's choice: the paper's values were not retrievable). Hidden Linear weights are
/// initialised N(0, 2 / in_features) (He et al. 2015, PyTorch's
/// `kaiming_normal_(nonlinearity="relu")`), so that the un-normalised MLP keeps its signal
/// through all layers; biases and the classifier use PyTorch's default
/// U(−1/√in, 1/√in).
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers, `layers.0` first.
    pub layers: Vec<MlpLayer>,
    /// Classifier.
    pub head: Linear,
}

impl Mlp {
    /// An MLP of `depth` hidden layers of `width` units on `in_features` inputs.
    ///
    /// # Errors
    /// A [`NormError`] when `gn_groups` does not fit `width`.
    pub fn new(
        in_features: usize,
        depth: usize,
        width: usize,
        num_classes: usize,
        norms: MlpNorms,
        gn_groups: usize,
        device: &Device,
    ) -> Result<Self, NormError> {
        let uniform = |i: usize| {
            let bound = 1.0 / (i as f64).sqrt();
            Initializer::Uniform {
                min: -bound,
                max: bound,
            }
        };
        let linear = |i: usize, o: usize, he: bool| {
            let mut layer = LinearConfig::new(i, o)
                .with_initializer(uniform(i))
                .init(device);
            if he {
                let std = (2.0 / i as f64).sqrt();
                layer.weight = Initializer::Normal { mean: 0.0, std }.init([i, o], device);
            }
            layer
        };
        let mut layers = Vec::with_capacity(depth);
        for l in 0..depth {
            let input = if l == 0 { in_features } else { width };
            layers.push(MlpLayer {
                linear: linear(input, width, true),
                norm: norms.norm(l + 1, gn_groups).init(width, device)?,
            });
        }
        let head_in = if depth == 0 { in_features } else { width };
        Ok(Self {
            layers,
            head: linear(head_in, num_classes, false),
        }
        .initialized())
    }

    /// Class logits. `[N, in_features]` → `[N, num_classes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.layers {
            x = relu(layer.norm.forward(layer.linear.forward(x)));
        }
        self.head.forward(x)
    }
}

//! Listing the parameters and buffers of any module by their PyTorch-style path.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Names of the non-trainable state tensors of a norm (PyTorch "buffers").
pub const BUFFER_NAMES: [&str; 3] = ["running_mean", "running_var", "num_batches_tracked"];

/// One tensor of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Dotted path as in a PyTorch `state_dict` (`layer1.0.bn1.weight`); enum variant names
    /// (e.g. `Batch` of [`Norm`](crate::norm::Norm)) are left out.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// `true` for running statistics (buffers), `false` for trainable parameters.
    pub is_buffer: bool,
    /// `true` for the weight of a Burn `Linear`, stored `[in, out]` in Burn and
    /// `[out, in]` in PyTorch.
    pub is_linear_weight: bool,
    /// Burn's id of the parameter or buffer.
    pub id: ParamId,
}

#[derive(Default)]
struct Collector {
    stack: Vec<String>,
    containers: Vec<String>,
    entries: Vec<TensorEntry>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        // Enum variants are not part of PyTorch paths: push a marker that is skipped.
        if container_type.starts_with("Enum:") {
            self.stack.push(String::new());
        } else {
            self.stack.push(name.to_string());
        }
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
        self.containers.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path: Vec<&str> = self
            .stack
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let last = path.last().copied().unwrap_or_default();
        let module = self
            .containers
            .iter()
            .rev()
            .find(|c| c.starts_with("Struct:"))
            .map(String::as_str);
        self.entries.push(TensorEntry {
            path: path.join("."),
            shape: param.lazy_shape().dims::<D>().to_vec(),
            is_buffer: BUFFER_NAMES.contains(&last),
            is_linear_weight: module == Some("Struct:Linear") && last == "weight" && D == 2,
            id: param.id,
        });
    }
}

/// Every float tensor of `module` (parameters and running statistics), in visiting order.
pub fn tensor_entries<M: Module>(module: &M) -> Vec<TensorEntry> {
    let mut collector = Collector::default();
    module.visit(&mut collector);
    collector.entries
}

/// Number of trainable parameters, as PyTorch's
/// `sum(p.numel() for p in model.parameters())`.
///
/// Burn's `Module::num_params` also counts running statistics (they are stored as module
/// state); this count leaves them out.
pub fn count_parameters<M: Module>(module: &M) -> usize {
    tensor_entries(module)
        .iter()
        .filter(|e| !e.is_buffer)
        .map(|e| e.shape.iter().product::<usize>())
        .sum()
}

use super::{MobileNetLayer, Network, ResNet, ShuffleNetV2};
use crate::blocks::{ResidualBlock, Shortcut};
use crate::norm::Norm;

impl ResNet {
    /// Every norm layer, in forward order (stem, then each block's norms and its
    /// projection's norm).
    pub fn norm_layers(&self) -> Vec<&Norm> {
        let mut out = vec![&self.bn1];
        for block in self.blocks() {
            let downsample = match block {
                ResidualBlock::Basic(b) => {
                    out.extend([&b.bn1, &b.bn2]);
                    &b.downsample
                }
                ResidualBlock::Bottleneck(b) => {
                    out.extend([&b.bn1, &b.bn2, &b.bn3]);
                    &b.downsample
                }
            };
            if let Some(Shortcut::Projection(p)) = downsample {
                out.push(&p.bn);
            }
        }
        out
    }
}

impl super::MobileNetV2 {
    /// Every norm layer, in forward order.
    pub fn norm_layers(&self) -> Vec<&Norm> {
        let mut out = Vec::new();
        for layer in &self.features {
            match layer {
                MobileNetLayer::Conv(c) => out.push(&c.norm),
                MobileNetLayer::InvertedResidual(b) => {
                    if let Some(e) = &b.expand {
                        out.push(&e.norm);
                    }
                    out.extend([&b.depthwise_norm, &b.project_norm]);
                }
            }
        }
        out
    }
}

impl ShuffleNetV2 {
    /// Every norm layer, in forward order.
    pub fn norm_layers(&self) -> Vec<&Norm> {
        let mut out = vec![&self.first_norm];
        for b in &self.features {
            if let Some(p) = &b.proj {
                out.extend([&p.dw_norm, &p.pw_norm]);
            }
            out.extend([&b.main_pw_norm, &b.main_dw_norm, &b.main_pw_linear_norm]);
        }
        out.push(&self.conv_last_norm);
        out
    }
}

impl Network {
    /// Every norm layer, in forward order.
    pub fn norm_layers(&self) -> Vec<&Norm> {
        match self {
            Network::ResNet(m) => m.norm_layers(),
            Network::MobileNetV2(m) => m.norm_layers(),
            Network::ShuffleNetV2(m) => m.norm_layers(),
        }
    }
}

struct Initialize;

impl ModuleVisitor for Initialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Draws the initial value of every parameter now, in module order.
///
/// Burn initialises parameters lazily, on first use, so without this the random draws of a
/// model happen whenever (and in whatever order) it is first used, and a seed set on the
/// device right before building it would not reproduce its weights. Every zoo model's
/// `init` ends with this.
pub trait InitializeNow: Module + Sized {
    /// Initialises every parameter and returns the module.
    fn initialized(self) -> Self {
        self.visit(&mut Initialize);
        self
    }
}

impl<M: Module> InitializeNow for M {}

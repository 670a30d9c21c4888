//! Listing the parameters and buffers of any module by their PyTorch-style path.

use burn::module::{Module, ModuleVisitor, Param};
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
}

#[derive(Default)]
struct Collector {
    stack: Vec<String>,
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
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path: Vec<&str> = self
            .stack
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let last = path.last().copied().unwrap_or_default();
        self.entries.push(TensorEntry {
            path: path.join("."),
            shape: param.shape().dims::<D>().to_vec(),
            is_buffer: BUFFER_NAMES.contains(&last),
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

//! Residual blocks and the placement of their norms.
//!
//! [`BasicBlock`] and [`Bottleneck`] follow torchvision's layout and take every norm from a
//! [`NormPlan`], so the XBNBlock variants P1/P2/P3 of the paper are placements
//! ([`Placement`]) of one batch-free norm, not separate block types.

mod basic;
mod bottleneck;
pub mod conv;
mod plan;
mod shortcut;

pub use basic::BasicBlock;
pub use bottleneck::Bottleneck;
pub use plan::{NormPlan, Placement};
pub use shortcut::{Projection, Shortcut, ShortcutKind, ZeroPad};

use burn::module::Module;
use burn::tensor::Tensor;

use crate::norm::NormError;

/// Which block a ResNet stage is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// [`BasicBlock`] (expansion 1).
    Basic,
    /// [`Bottleneck`] (expansion 4).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => BasicBlock::EXPANSION,
            BlockKind::Bottleneck => Bottleneck::EXPANSION,
        }
    }
}

/// One residual block of either kind.
#[derive(Module, Debug)]
// Modules are built once and moved rarely; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
pub enum ResidualBlock {
    /// A [`BasicBlock`].
    Basic(BasicBlock),
    /// A [`Bottleneck`].
    Bottleneck(Bottleneck),
}

impl ResidualBlock {
    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, C_out, H / stride, W / stride]`
    ///
    /// # Errors
    /// A [`NormError`] from a norm of the block.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, NormError> {
        match self {
            ResidualBlock::Basic(b) => b.try_forward(x),
            ResidualBlock::Bottleneck(b) => b.try_forward(x),
        }
    }

    /// Like [`ResidualBlock::try_forward`], panicking with the error's message.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

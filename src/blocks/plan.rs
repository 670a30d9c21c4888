//! Norm placements: which norm each slot of a residual network gets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::norm::NormConfig;

/// Where the batch-free norm (BFN) goes in an XBN network.
///
/// The placements of the authors' code (`models/resnet_XBNBlock_P{1,2,3}.py`, paper.md
/// §4.2). In every XBN placement the stem norm is the BFN too and the downsample norm
/// stays BatchNorm:
///
/// | placement | stem | Bottleneck n1 / n2 / n3 | BasicBlock n1 / n2 | downsample |
/// |---|---|---|---|---|
/// | `bn`      | BN  | BN / BN / BN   | BN / BN   | BN |
/// | `xbn-p1`  | BFN | BFN / BN / BN  | BFN / BN  | BN |
/// | `xbn-p2`  | BFN | BN / BFN / BN  | BFN / BN  | BN |
/// | `xbn-p3`  | BFN | BN / BN / BFN  | BN / BFN  | BN |
/// | `all`     | BFN | BFN / BFN / BFN | BFN / BFN | BFN |
///
/// P2 is the paper's XBNBlock ("replaces the second BN of a bottleneck with a BFN"). In a
/// BasicBlock P1 and P2 are the same (the authors' code replaces the first norm in both).
/// `all` is the all-GN baseline of the authors' `resnext_forGN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Plain BatchNorm everywhere (the baseline).
    Bn,
    /// BFN in place of the first norm of each block.
    XbnP1,
    /// BFN in place of the 3×3 conv's norm (Bottleneck) / the first norm (BasicBlock).
    XbnP2,
    /// BFN in place of the last norm of each block.
    XbnP3,
    /// BFN everywhere, downsample included.
    All,
}

impl Placement {
    /// All placements, in table order.
    pub const ALL: [Placement; 5] = [
        Placement::Bn,
        Placement::XbnP1,
        Placement::XbnP2,
        Placement::XbnP3,
        Placement::All,
    ];

    /// The name used on the command line and in model names (`xbn-p2`).
    pub fn name(self) -> &'static str {
        match self {
            Placement::Bn => "bn",
            Placement::XbnP1 => "xbn-p1",
            Placement::XbnP2 => "xbn-p2",
            Placement::XbnP3 => "xbn-p3",
            Placement::All => "all",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Placement::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown placement '{s}': use bn, xbn-p1, xbn-p2, xbn-p3 or all")
            })
    }
}

/// The norm of every slot of a residual network: a [`Placement`] resolved into
/// [`NormConfig`]s.
///
/// Blocks and models only read this plan, so any placement (including your own) is a
/// value, not a new block type.
///
/// ```
/// use xbn::blocks::{NormPlan, Placement};
/// use xbn::norm::NormConfig;
/// let plan = NormPlan::new(Placement::XbnP2, NormConfig::group(64));
/// assert_eq!(plan.bottleneck[1], NormConfig::group(64));
/// assert_eq!(plan.downsample, NormConfig::batch());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormPlan {
    /// Norm after the stem convolution (`bn1` of the network).
    pub stem: NormConfig,
    /// Norms `bn1`, `bn2` of a BasicBlock.
    pub basic: [NormConfig; 2],
    /// Norms `bn1`, `bn2`, `bn3` of a Bottleneck.
    pub bottleneck: [NormConfig; 3],
    /// Norm of the projection shortcut (`downsample`).
    pub downsample: NormConfig,
}

impl NormPlan {
    /// The plan of `placement`, with `bfn` as the batch-free norm and PyTorch-default
    /// BatchNorm everywhere else.
    pub fn new(placement: Placement, bfn: NormConfig) -> Self {
        Self::with_batch_norm(placement, bfn, NormConfig::batch())
    }

    /// Like [`NormPlan::new`], with a custom batch norm (e.g. another momentum).
    pub fn with_batch_norm(placement: Placement, bfn: NormConfig, bn: NormConfig) -> Self {
        let b = || bn.clone();
        let f = || bfn.clone();
        match placement {
            Placement::Bn => Self::uniform(bn),
            Placement::XbnP1 => Self {
                stem: f(),
                basic: [f(), b()],
                bottleneck: [f(), b(), b()],
                downsample: b(),
            },
            Placement::XbnP2 => Self {
                stem: f(),
                basic: [f(), b()],
                bottleneck: [b(), f(), b()],
                downsample: b(),
            },
            Placement::XbnP3 => Self {
                stem: f(),
                basic: [b(), f()],
                bottleneck: [b(), b(), f()],
                downsample: b(),
            },
            Placement::All => Self::uniform(bfn),
        }
    }

    /// The same norm in every slot.
    pub fn uniform(norm: NormConfig) -> Self {
        Self {
            stem: norm.clone(),
            basic: [norm.clone(), norm.clone()],
            bottleneck: [norm.clone(), norm.clone(), norm.clone()],
            downsample: norm,
        }
    }
}

impl Default for NormPlan {
    /// BatchNorm everywhere.
    fn default() -> Self {
        Self::uniform(NormConfig::batch())
    }
}

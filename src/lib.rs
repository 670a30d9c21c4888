//! # xbn — estimation shift of batch normalization, on Burn
//!
//! xbn reimplements the networks and measurements of Huang et al., *"Delving into the
//! Estimation Shift of Batch Normalization in a Network"* (CVPR 2022) in Rust on
//! [Burn](https://burn.dev) 0.22:
//!
//! - [`norm`]: PyTorch-exact [`BatchNorm`](norm::BatchNorm), [`GroupNorm`](norm::GroupNorm)
//!   (with the authors' group clamping), LayerNorm/InstanceNorm in the CNN sense, and the
//!   serde-configurable factory [`NormConfig`](norm::NormConfig) that every block takes its
//!   norms from (torchvision's `norm_layer` idea).
//! - [`blocks`]: `BasicBlock` and `Bottleneck` with the XBNBlock placements P1/P2/P3
//!   ([`NormPlan`](blocks::NormPlan)); an XBN block is a *placement* of norms, not a copy.
//! - [`models`]: CIFAR-style ResNets (ResNet-20/32/44/56/110 and ResNet-18/34/50 with a
//!   CIFAR stem).
//! - [`data`]: IDX (MNIST, Fashion-MNIST) and CIFAR binary readers, data location and
//!   download, and a batcher with normalisation and seeded augmentation.
//! - [`train`]: training with burn-train's `Learner` (SGD, step/multistep/cosine schedules,
//!   checkpoints, resume), evaluation, and the run directory layout.
//!
//! Burn 0.22 picks the backend at run time: every model here is one type that runs on any
//! Burn [`Device`](burn::tensor::Device) (flex by default; ndarray, wgpu, cuda, tch behind
//! Cargo features). Training mode follows Burn's rule: a norm runs in training mode when its
//! input lives on an autodiff device and the module's training flag is set
//! (`model.valid()` switches it off).

pub mod blocks;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod esm;
pub mod experiment;
mod fsutil;
pub mod malloc;
pub mod models;
pub mod norm;
pub mod progress;
pub mod train;

pub use error::{Error, Result};

/// The Burn version xbn is built on, re-exported so that xbn is the only dependency a
/// project needs: `use xbn::burn;` at the top of a module makes `burn::…` paths and
/// `#[derive(Module)]` resolve to it.
pub use burn;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

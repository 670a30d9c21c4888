//! Backend selection at run time.
//!
//! Burn 0.22 has no backend type parameter: a model is one type and the backend is a
//! runtime [`Device`]. This module maps the names used on xbn's command line to devices of
//! the backends compiled into this build (Cargo features `flex` (default), `ndarray`,
//! `wgpu`, `cuda`, `tch`).

use burn::tensor::Device;

/// A backend the command line can ask for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's portable multi-threaded CPU backend (feature `flex`, the default).
    Flex,
    /// The ndarray CPU backend (feature `ndarray`; deprecated upstream and slow for training).
    Ndarray,
    /// wgpu (feature `wgpu`): Vulkan/Metal/DX12 GPUs, or lavapipe on a CPU.
    Wgpu,
    /// CUDA (feature `cuda`): device 0.
    Cuda,
    /// LibTorch (feature `tch`; needs a matching libtorch).
    Tch,
}

impl BackendKind {
    /// The device of this backend, or an error naming the Cargo feature to enable.
    pub fn device(self) -> Result<Device, crate::train::TrainError> {
        let missing = |feature: &'static str| crate::train::TrainError::BackendNotCompiled {
            backend: format!("{self:?}").to_lowercase(),
            feature,
        };
        match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(not(feature = "flex"))]
            BackendKind::Flex => Err(missing("flex")),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            BackendKind::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            BackendKind::Ndarray => Err(missing("ndarray")),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            BackendKind::Wgpu => Err(missing("wgpu")),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(missing("cuda")),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            BackendKind::Tch => Ok(Device::libtorch()),
            #[cfg(not(feature = "tch"))]
            BackendKind::Tch => Err(missing("tch")),
        }
    }
}

//! Helpers shared by the integration tests: devices, golden fixtures, tolerances.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use xbn::norm::{Norm, NormConfig};

/// Serialises the tests of one test binary that draw random numbers.
///
/// Burn's CPU backends keep one random generator per process (`Backend::seed` sets it, every
/// random initialisation and dropout mask draws from it), like `torch.manual_seed`. Tests run
/// on parallel threads, so a test that checks that a seeded run is reproducible holds this
/// lock, and so does every other test of its binary that initialises a model.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every backend compiled into this test build: flex always, ndarray with
/// `--features ndarray` (the README's test command enables it), and wgpu, tch and cuda with
/// their features (`tools/backend_tests.sh` runs the suite that way). wgpu takes its default
/// device (a GPU, or a CPU through Mesa's lavapipe; `CUBECL_WGPU_DEFAULT_DEVICE` overrides
/// it), tch the LibTorch CPU device, cuda device 0.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    devices.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "wgpu")]
    devices.push((
        "wgpu",
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
    ));
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    devices.push(("tch", Device::libtorch()));
    #[cfg(feature = "cuda")]
    devices.push(("cuda", Device::cuda(0)));
    devices
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The tensors of `golden/<case>.data.safetensors`: name -> (values, shape).
pub struct Golden {
    pub case: String,
    tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
}

impl Golden {
    pub fn load(case: &str) -> Self {
        Self {
            case: case.to_string(),
            ..Self::load_path(&fixture(&format!("golden/{case}.data.safetensors")))
        }
    }

    /// Any safetensors file of float32 tensors.
    pub fn load_path(path: &std::path::Path) -> Self {
        let case = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name, (values, view.shape().to_vec()))
            })
            .collect();
        Self { case, tensors }
    }

    pub fn values(&self, key: &str) -> &[f32] {
        &self.get(key).0
    }

    fn get(&self, key: &str) -> &(Vec<f32>, Vec<usize>) {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.case))
    }

    pub fn tensor<const D: usize>(&self, key: &str, device: &Device) -> Tensor<D> {
        let (values, shape) = self.get(key);
        Tensor::from_data(TensorData::new(values.clone(), shape.clone()), device)
    }
}

/// Loads `golden/<case>.module.safetensors` into `module` (every tensor must match).
pub fn load_module<M: Module>(mut module: M, case: &str) -> M {
    let path = fixture(&format!("golden/{case}.module.safetensors"));
    let mut store = SafetensorsStore::from_file(path).skip_enum_variants(true);
    let result = module.load_from(&mut store).expect("fixture loads");
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    assert!(result.unused.is_empty(), "unused: {:?}", result.unused);
    module
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// Relative tolerance of every golden comparison (issue 2: 1e-5 or better).
pub const RTOL: f64 = 1e-5;

/// Asserts `|a - e| <= RTOL·|e| + atol` elementwise, with `atol = RTOL · max|e|` (a value
/// near zero inside a tensor of magnitude ~1 is compared at that tensor's scale). Returns
/// the largest error relative to `max|e|`, for reporting.
pub fn assert_close(actual: &[f32], expected: &[f32], what: &str) -> f64 {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected
        .iter()
        .fold(0f64, |m, &e| m.max((e as f64).abs()))
        .max(1e-12);
    let atol = RTOL * scale;
    let mut worst = 0f64;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a as f64, e as f64);
        let err = (a - e).abs();
        assert!(
            err <= RTOL * e.abs() + atol,
            "{what}[{i}]: got {a}, expected {e} (error {err:.3e}, scale {scale:.3e})"
        );
        worst = worst.max(err / scale);
    }
    println!("{what}: max error / max|expected| = {worst:.2e}");
    worst
}

/// A model written as a user would: Burn layers plus norms from xbn's factory. It has no
/// ESM-specific code. Mirrors `TinyBnNet` of tools/gen_esm.py (module paths = PyTorch
/// names).
#[derive(Module, Debug)]
pub struct TinyBnNet {
    pub conv1: Conv2d,
    pub bn1: Norm,
    pub conv2: Conv2d,
    pub bn2: Norm,
    pub fc1: Linear,
    pub bn3: Norm,
    pub fc2: Linear,
}

impl TinyBnNet {
    pub fn new(norm: &NormConfig, device: &Device) -> Self {
        let conv = |i, o, s| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        Self {
            conv1: conv(3, 8, 1),
            bn1: norm.init(8, device).unwrap(),
            conv2: conv(8, 16, 2),
            bn2: norm.init(16, device).unwrap(),
            fc1: LinearConfig::new(16, 12).init(device),
            bn3: norm.init(12, device).unwrap(),
            fc2: LinearConfig::new(12, 10).init(device),
        }
    }

    /// `[N, 3, H, W]` → `[N, 10]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        let x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        let x = relu(self.bn3.forward(self.fc1.forward(x)));
        self.fc2.forward(x)
    }
}

//! Helpers shared by the integration tests: devices, golden fixtures, tolerances.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

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

/// The CPU backends compiled into this test build: flex always, ndarray with
/// `--features ndarray` (the README's test command enables it).
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    devices.push(("ndarray", Device::ndarray()));
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

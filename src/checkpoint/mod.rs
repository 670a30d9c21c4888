//! Weights in and out of xbn: PyTorch `.pth`/`.pt` state dicts and safetensors, in PyTorch
//! `state_dict` naming.
//!
//! - [`save_safetensors`] writes every parameter and running statistic under its PyTorch
//!   name (`layer1.0.bn1.running_mean`, `downsample.0.weight`, classifier weights
//!   `[out_features, in_features]`, `num_batches_tracked` as an int64 scalar), so
//!   `model.load_state_dict(safetensors.torch.load_file(path))` works in PyTorch.
//! - [`load_weights`] reads a PyTorch checkpoint (zip or legacy `torch.save` format, a bare
//!   state dict or one wrapped in `state_dict` / `model`, with or without DataParallel's
//!   `module.` prefix) or a safetensors file, maps the names (torchvision's or the
//!   authors'), converts float64/float16/bfloat16 to float32, and applies it. Missing or
//!   unused tensors are a typed error unless partial loading is allowed. It also reads the
//!   burn-train checkpoints of an `xbn train` run (`checkpoint/model-N.bpk`, Burn's format).
//!
//! Files are written through a temporary file and a rename, so an interrupted save never
//! destroys the checkpoint already on disk.

mod naming;

pub use naming::{Family, Naming, pytorch_names};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor};
use burn::store::pytorch_reader::{DType as TorchDType, PytorchReader};
use burn::store::{ModuleRecord, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::models::{Network, tensor_entries};

/// Errors raised while saving or loading weights.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint file does not exist.
    #[error(
        "checkpoint {path} does not exist; pass the model.safetensors of a finished run (or a .pth / .safetensors file, or a run's checkpoint/model-N.bpk)"
    )]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file could not be read, parsed or written.
    #[error("{path}: {reason}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A tensor of a type xbn cannot load into float32 parameters.
    #[error("{path}: tensor {name} has type {dtype}, which cannot be loaded into a float32 model")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Its type.
        dtype: String,
    },
    /// The weights hold NaN or infinite values.
    #[error(
        "{path}: {count} of {total} tensors hold NaN or infinite values (e.g. {first:?}); \
         these weights come from a training run that diverged and cannot be evaluated. \
         Use the checkpoint of an earlier epoch, or train again with a lower learning rate"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Tensors with non-finite values.
        count: usize,
        /// Tensors in the model.
        total: usize,
        /// The first few of them (module paths).
        first: Vec<String>,
    },
    /// The file's tensors do not match the model.
    #[error(
        "{path} does not match the model: {} missing {missing:?}, {} unused {unused:?}, errors {errors:?}; \
         was it saved from the same architecture and norm plan? (allow partial loading to load what matches)",
        missing.len(),
        unused.len()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Model tensors absent from the file (xbn paths).
        missing: Vec<String>,
        /// File tensors the model does not have (names as in the file).
        unused: Vec<String>,
        /// Shape mismatches.
        errors: Vec<String>,
    },
}

/// Names (module paths) of the float tensors of `model` that hold a NaN or an infinity.
pub fn non_finite_tensors<M: Module>(model: &M) -> Vec<String> {
    model
        .collect(None, None, true)
        .into_iter()
        .filter(|t| t.dtype == DType::F32)
        .filter_map(|t| {
            let bytes = t.to_bytes().ok()?;
            bytes
                .chunks_exact(4)
                .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
                .then(|| t.name.clone())
        })
        .collect()
}

/// Refuses a loaded model whose weights are not all finite.
fn check_finite<M: Module>(model: M, path: &Path) -> Result<M, CheckpointError> {
    let bad = non_finite_tensors(&model);
    if bad.is_empty() {
        return Ok(model);
    }
    Err(CheckpointError::NonFinite {
        path: path.to_path_buf(),
        count: bad.len(),
        total: tensor_entries(&model).len(),
        first: bad.into_iter().take(5).collect(),
    })
}

/// How to load a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// The model's layout family ([`Family::Generic`] for your own models).
    pub family: Option<Family>,
    /// Whose names the file uses.
    pub naming: Naming,
    /// Load what matches and report the rest instead of failing.
    pub allow_partial: bool,
}

/// What [`load_weights`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Tensors loaded.
    pub loaded: usize,
    /// Model tensors that kept their value (partial loading only).
    pub missing: Vec<String>,
    /// File tensors that were not used (partial loading only).
    pub unused: Vec<String>,
    /// The naming the file was read with.
    pub naming: Naming,
}

/// A tensor read from a file, converted to float32.
struct SourceTensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn store_err(path: &Path, reason: impl ToString) -> CheckpointError {
    CheckpointError::Store {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn is_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[8] == b'{'
}

fn read_source(path: &Path) -> Result<Vec<SourceTensor>, CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| store_err(path, e))?;
    let mut tensors = Vec::new();
    if is_safetensors(&bytes) {
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| store_err(path, e))?;
        for (name, view) in st.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => TorchDType::F32,
                safetensors::Dtype::F64 => TorchDType::F64,
                safetensors::Dtype::F16 => TorchDType::F16,
                safetensors::Dtype::BF16 => TorchDType::BF16,
                safetensors::Dtype::I64 => TorchDType::I64,
                safetensors::Dtype::I32 => TorchDType::I32,
                other => {
                    return Err(CheckpointError::UnsupportedType {
                        path: path.to_path_buf(),
                        name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let data = to_f32(path, &name, dtype, view.data())?;
            tensors.push(SourceTensor {
                name,
                shape: view.shape().to_vec(),
                data,
            });
        }
    } else {
        let reader = PytorchReader::new(path).map_err(|e| {
            store_err(
                path,
                format!("not a safetensors file nor a PyTorch checkpoint ({e})"),
            )
        })?;
        for (name, tensor) in reader.into_tensors() {
            let raw = tensor.read().map_err(|e| store_err(path, e))?;
            let data = to_f32(path, &name, tensor.dtype(), &raw)?;
            tensors.push(SourceTensor {
                shape: tensor.shape().to_vec(),
                name,
                data,
            });
        }
    }
    strip_wrappers(&mut tensors);
    Ok(tensors)
}

fn to_f32(
    path: &Path,
    name: &str,
    dtype: TorchDType,
    raw: &[u8],
) -> Result<Vec<f32>, CheckpointError> {
    let chunks = |n: usize| raw.chunks_exact(n);
    Ok(match dtype {
        TorchDType::F32 => chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        TorchDType::F64 => chunks(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        TorchDType::F16 => chunks(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        TorchDType::BF16 => chunks(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        TorchDType::I64 => chunks(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        TorchDType::I32 => chunks(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        other => {
            return Err(CheckpointError::UnsupportedType {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// Unwraps the state dict of a checkpoint: when the file is a checkpoint dictionary with a
/// `state_dict`, `model_state_dict` or `model` entry (next to e.g. `optimizer` and `epoch`,
/// as the authors' `checkpoint.pth`), only that entry's tensors are kept, without the
/// prefix; then DataParallel's `module.` prefix is removed when every tensor has it.
fn strip_wrappers(tensors: &mut Vec<SourceTensor>) {
    for wrapper in ["state_dict.", "model_state_dict.", "model."] {
        if tensors.iter().any(|t| t.name.starts_with(wrapper)) {
            tensors.retain(|t| t.name.starts_with(wrapper));
            for t in tensors.iter_mut() {
                t.name = t.name[wrapper.len()..].to_string();
            }
            break;
        }
    }
    while !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with("module.")) {
        for t in tensors.iter_mut() {
            t.name = t.name["module.".len()..].to_string();
        }
    }
}

const NBT: &str = "num_batches_tracked";

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Loads a burn-train model checkpoint (`checkpoint/model-N.bpk` of an `xbn train` run,
/// Burn's own format and module paths) into `model`. Such a file holds the whole model of
/// its run, so partial loading is refused, and the file is read at once (burn-train may
/// delete old checkpoints of a run that is still training).
fn load_burn_checkpoint<M: Module>(
    model: M,
    path: &Path,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    if options.allow_partial {
        return Err(store_err(
            path,
            "partial loading is not available for burn-train checkpoints (.bpk): load the \
             whole model, or export it with `xbn` to safetensors first",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CheckpointError::NotFound {
            path: path.to_path_buf(),
        },
        _ => store_err(path, e),
    })?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| store_err(path, format!("not a burn-train model checkpoint ({e})")))?
        .cast_to_module_dtype();
    let loaded = record.len();
    let model = model.try_load_record(record).map_err(|e| {
        // Burn's message lists every tensor: keep the start.
        let mut e = e.to_string();
        if let Some((cut, _)) = e.char_indices().nth(300) {
            e.truncate(cut);
            e.push_str(" …");
        }
        store_err(
            path,
            format!(
                "does not match the model ({e}); pass the model-N.bpk of a run of the same \
                 architecture and norm plan"
            ),
        )
    })?;
    Ok((
        check_finite(model, path)?,
        LoadReport {
            loaded,
            ..LoadReport::default()
        },
    ))
}

/// Loads the weights of `path` into `model` (see the module documentation for what is
/// accepted). `options.family` defaults to [`Family::Generic`] (names = module paths).
///
/// # Errors
/// [`CheckpointError::NotFound`], [`CheckpointError::Store`] for an unreadable file (and
/// for a burn-train `.bpk` checkpoint that does not match the model, or with partial
/// loading), [`CheckpointError::UnsupportedType`], [`CheckpointError::NonFinite`] when a
/// loaded tensor holds NaN or infinity, and [`CheckpointError::Mismatch`]
/// listing the missing, unused and wrongly shaped tensors (without partial loading; shape errors
/// always).
pub fn load_weights<M: Module>(
    mut model: M,
    path: &Path,
    options: &LoadOptions,
) -> Result<(M, LoadReport), CheckpointError> {
    if path.extension().is_some_and(|e| e == "bpk") {
        return load_burn_checkpoint(model, path, options);
    }
    let source = read_source(path)?;
    let family = options.family.unwrap_or(Family::Generic);
    let entries = tensor_entries(&model);
    let paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    let source_names: HashMap<&str, usize> = source
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    // Only MobileNetV2's names differ between torchvision and the authors.
    let candidates = match (options.naming, family) {
        (Naming::Auto, Family::MobileNetV2) => vec![Naming::Authors, Naming::Torchvision],
        (Naming::Auto, _) => vec![Naming::Authors],
        (n, _) => vec![n],
    };
    let (naming, names) = candidates
        .into_iter()
        .map(|n| (n, pytorch_names(&paths, family, n)))
        .max_by_key(|(_, names)| {
            names
                .iter()
                .filter(|n| source_names.contains_key(n.as_str()))
                .count()
        })
        .expect("at least one naming");

    let mut used = vec![false; source.len()];
    let mut missing = Vec::new();
    let mut pack = Vec::new();
    for (entry, torch_name) in entries.iter().zip(&names) {
        let xbn_path = &entry.path;
        let Some(&i) = source_names.get(torch_name.as_str()) else {
            // Checkpoints from before PyTorch 0.4.1 have no num_batches_tracked; PyTorch
            // accepts them, and so does xbn (the counter keeps its value).
            if !xbn_path.ends_with(NBT) {
                missing.push(xbn_path.clone());
            }
            continue;
        };
        used[i] = true;
        let t = &source[i];
        let (shape, data) = if xbn_path.ends_with(NBT) && t.data.len() == 1 {
            (vec![1], t.data.clone())
        } else if entry.is_linear_weight && t.shape.len() == 2 {
            // PyTorch [out, in] → Burn [in, out].
            (
                vec![t.shape[1], t.shape[0]],
                transpose(&t.data, t.shape[0], t.shape[1]),
            )
        } else {
            (t.shape.clone(), t.data.clone())
        };
        pack.push(PackTensor::new(
            xbn_path.clone(),
            DType::F32,
            shape,
            None,
            Bytes::from_elems(data),
        ));
    }
    let unused: Vec<String> = source
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(t, _)| t.name.clone())
        .collect();
    if !options.allow_partial && (!missing.is_empty() || !unused.is_empty()) {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            missing,
            unused,
            errors: vec![],
        });
    }
    let loaded = pack.len();
    let result = model.apply(pack, None, None, true);
    if !result.errors.is_empty() {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            missing: vec![],
            unused: vec![],
            errors: result.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    Ok((
        check_finite(model, path)?,
        LoadReport {
            loaded,
            missing,
            unused,
            naming,
        },
    ))
}

/// Saves every parameter and running statistic of `model` to `path` as safetensors with
/// PyTorch names of `family` / `naming` (see the module documentation).
///
/// # Errors
/// [`CheckpointError::Store`] when the file cannot be written.
pub fn save_weights<M: Module>(
    model: &M,
    path: &Path,
    family: Family,
    naming: Naming,
) -> Result<(), CheckpointError> {
    let linear: std::collections::HashSet<String> = tensor_entries(model)
        .into_iter()
        .filter(|e| e.is_linear_weight)
        .map(|e| e.path)
        .collect();
    let tensors = model.collect(None, None, true);
    let paths: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let names = pytorch_names(&paths, family, naming);
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (t, name) in tensors.into_iter().zip(names) {
        let shape = t.shape.to_vec();
        let is_linear = linear.contains(&t.name);
        let bytes = t.to_bytes().map_err(|e| store_err(path, e))?.to_vec();
        if name.ends_with(NBT) {
            let value = f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
            owned.push((
                name,
                safetensors::Dtype::I64,
                vec![],
                (value as i64).to_le_bytes().to_vec(),
            ));
        } else if is_linear && shape.len() == 2 {
            // Burn [in, out] → PyTorch [out, in].
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let t = transpose(&values, shape[0], shape[1]);
            let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            owned.push((
                name,
                safetensors::Dtype::F32,
                vec![shape[1], shape[0]],
                bytes,
            ));
        } else {
            owned.push((name, safetensors::Dtype::F32, shape, bytes));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .expect("shape matches the bytes");
            (name.clone(), view)
        })
        .collect();
    // One key only: a HashMap's order is random, and the same model must give the same bytes.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| store_err(path, e))?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|e| store_err(path, e))
}

/// [`save_weights`] of a zoo network with its family and the authors' naming.
///
/// # Errors
/// See [`save_weights`].
pub fn save_safetensors<M: Module + HasFamily>(
    model: &M,
    path: &Path,
) -> Result<(), CheckpointError> {
    save_weights(model, path, model.family(), Naming::Authors)
}

/// [`load_weights`] of a zoo network with its family, any naming, nothing partial.
///
/// # Errors
/// See [`load_weights`].
pub fn load_safetensors<M: Module + HasFamily>(
    model: M,
    path: &Path,
) -> Result<M, CheckpointError> {
    let options = LoadOptions {
        family: Some(model.family()),
        ..LoadOptions::default()
    };
    load_weights(model, path, &options).map(|(m, _)| m)
}

/// Models that know their [`Family`].
pub trait HasFamily {
    /// The layout family.
    fn family(&self) -> Family;
}

impl HasFamily for Network {
    fn family(&self) -> Family {
        match self {
            Network::ResNet(_) => Family::ResNet,
            Network::MobileNetV2(_) => Family::MobileNetV2,
            Network::ShuffleNetV2(_) => Family::ShuffleNetV2,
        }
    }
}

impl HasFamily for crate::models::ResNet {
    fn family(&self) -> Family {
        Family::ResNet
    }
}

impl HasFamily for crate::models::MobileNetV2 {
    fn family(&self) -> Family {
        Family::MobileNetV2
    }
}

impl HasFamily for crate::models::ShuffleNetV2 {
    fn family(&self) -> Family {
        Family::ShuffleNetV2
    }
}

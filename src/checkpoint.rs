//! Saving and loading model weights as safetensors, with PyTorch `state_dict` names.
//!
//! Names follow PyTorch: enum variants are left out (`layer1.0.bn1.running_mean`), the
//! projection shortcut is `downsample.0` (conv) / `downsample.1` (norm) as torchvision's
//! `nn.Sequential`, and the classifier weight is stored `[out_features, in_features]`.
//! `num_batches_tracked` is stored as a one-element float32 tensor.
//!
//! Saving goes through a temporary file and a rename, so an interrupted save never
//! destroys the checkpoint already on disk.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

/// Errors raised while saving or loading weights.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint file does not exist.
    #[error(
        "checkpoint {path} does not exist; pass the model.safetensors of a finished run (or its run directory)"
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
    /// The file's tensors do not match the model.
    #[error(
        "{path} does not match the model: missing {missing:?}, unused {unused:?}, errors {errors:?}; \
         was it saved from the same architecture and norm plan?"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Model tensors absent from the file.
        missing: Vec<String>,
        /// File tensors the model does not have.
        unused: Vec<String>,
        /// Shape or type mismatches.
        errors: Vec<String>,
    },
}

fn store_for_save(path: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .overwrite(true)
        .with_key_remapping(r"\.downsample\.conv\.", ".downsample.0.")
        .with_key_remapping(r"\.downsample\.bn\.", ".downsample.1.")
        .metadata("library", "xbn")
}

fn store_for_load(path: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .with_key_remapping(r"\.downsample\.0\.", ".downsample.conv.")
        .with_key_remapping(r"\.downsample\.1\.", ".downsample.bn.")
}

/// Saves every parameter and running statistic of `model` to `path` (safetensors).
///
/// # Errors
/// [`CheckpointError::Store`] when the file cannot be written.
pub fn save_safetensors<M: Module>(model: &M, path: &Path) -> Result<(), CheckpointError> {
    model
        .save_into(&mut store_for_save(path))
        .map_err(|e| CheckpointError::Store {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Loads weights saved by [`save_safetensors`] into `model`; every tensor of the model
/// must be present, with the right shape, and the file must have no other tensor.
///
/// # Errors
/// [`CheckpointError::NotFound`], [`CheckpointError::Store`] for an unreadable file,
/// [`CheckpointError::Mismatch`] listing the missing, unused and mismatched tensors.
pub fn load_safetensors<M: Module>(mut model: M, path: &Path) -> Result<M, CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let mut store = store_for_load(path).allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| CheckpointError::Store {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            missing: result.missing.into_iter().map(|(p, _)| p).collect(),
            unused: result.unused,
            errors: result.errors.iter().map(|e| format!("{e:?}")).collect(),
        });
    }
    Ok(model)
}

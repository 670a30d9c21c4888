//! Batch sizes checked against the data and the memory before anything is allocated.
//!
//! A batch size is refused up front, with a typed error, when it cannot work: a training
//! batch larger than the training set (every step would see the whole set), or a batch
//! whose estimated memory exceeds what the machine has available. The estimate is
//! deliberately simple: the values the network's convolutions and linear layers output for
//! one image ([`Cost::activations`](crate::models::Cost)), times 16 bytes in training (the
//! layer output, the norm output and the activation kept for the backward pass, and their
//! gradients, in float32) or 4 bytes in inference (an upper bound: inference keeps only a
//! few layers' outputs alive), plus the input batch. Only CPU backends are checked against
//! the host's memory; a GPU's memory is not known here.

use crate::device::BackendKind;
use crate::models::Network;

use super::TrainError;

/// Bytes per activation value in a training step (see the module documentation).
const TRAIN_BYTES_PER_ACTIVATION: u64 = 16;
/// Bytes per activation value in an inference pass.
const INFER_BYTES_PER_ACTIVATION: u64 = 4;

/// Bytes the system can still hand out (`MemAvailable` of `/proc/meminfo`), where known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Estimated bytes of one pass of `batch` images `[C, H, W]` through `network`, in training
/// (forward and backward) or inference.
pub fn estimate_batch_bytes(
    network: &Network,
    [c, h, w]: [usize; 3],
    batch: usize,
    training: bool,
) -> u64 {
    let per_value = match training {
        true => TRAIN_BYTES_PER_ACTIVATION,
        false => INFER_BYTES_PER_ACTIVATION,
    };
    let activations = network.cost([h, w]).activations;
    // The input batch exists twice: the loader's buffer and the tensor.
    let input = (c * h * w) as u64 * 8;
    (activations.saturating_mul(per_value))
        .saturating_add(input)
        .saturating_mul(batch as u64)
}

/// Refuses a pass that needs more memory than the host has available (CPU backends only).
///
/// # Errors
/// [`TrainError::BatchTooLarge`] with the estimate and what is available.
pub fn check_batch_memory(
    backend: BackendKind,
    needed: u64,
    batch_size: usize,
    what: &'static str,
) -> Result<(), TrainError> {
    let on_host = matches!(
        backend,
        BackendKind::Flex | BackendKind::Ndarray | BackendKind::Tch
    );
    match available_memory() {
        Some(available) if on_host && needed > available => Err(TrainError::BatchTooLarge {
            batch_size,
            what,
            needed_gib: needed as f64 / GIB,
            available_gib: available as f64 / GIB,
        }),
        _ => Ok(()),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// The batch size of an inference pass over `num_images` images: `batch_size` capped at
/// the number of images (a larger batch changes nothing), checked against the memory.
///
/// # Errors
/// [`TrainError::InvalidConfig`] for a batch size of 0 or an empty data set,
/// [`TrainError::BatchTooLarge`] (see [`check_batch_memory`]).
pub fn inference_batch_size(
    network: &Network,
    backend: BackendKind,
    image_shape: [usize; 3],
    batch_size: usize,
    num_images: usize,
) -> Result<usize, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::InvalidConfig(
            "the batch size must be at least 1".into(),
        ));
    }
    if num_images == 0 {
        return Err(TrainError::InvalidConfig(
            "the data set has no images to evaluate".into(),
        ));
    }
    let batch = batch_size.min(num_images);
    let needed = estimate_batch_bytes(network, image_shape, batch, false);
    check_batch_memory(backend, needed, batch, "an inference pass")?;
    Ok(batch)
}

//! Datasets: readers, location/download, batching.
//!
//! - [`idx`]: MNIST / Fashion-MNIST IDX files (raw or gzip).
//! - [`cifar`]: the CIFAR-10/100 binary format.
//! - [`ImageDataset`] / [`DatasetKind`]: in-memory datasets with their metadata
//!   (shape, classes, mean/std).
//! - [`DataLocator`]: where data is read from (`--data-dir`, `$XBN_DATA`, the Debian
//!   package path, the download cache), [`download()`] from the canonical addresses.
//! - [`ImageBatcher`], [`train_loader`], [`eval_loader`]: normalisation, seeded
//!   augmentation, batches on the right device.
//!
//! Every file error names the file and says what to do.

mod batcher;
pub mod cifar;
mod dataset;
pub mod download;
pub mod idx;
mod image_file;
mod locate;

pub use batcher::{Augmentation, ImageBatch, ImageBatcher, LossWatch, eval_loader, train_loader};
pub use dataset::{DatasetKind, ImageDataset, ImageItem, Split};
pub use download::{Source, download};
pub use image_file::{
    IMAGENET_MEAN, IMAGENET_STD, MAX_IMAGE_ALLOC, MAX_IMAGE_SIDE, Preprocessing, decode_image,
    image_batch, preprocess,
};
pub use locate::{DATA_ENV, DEBIAN_FASHION_MNIST, DataLocator};

use std::path::{Path, PathBuf};

/// Errors raised while finding, downloading or reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An expected file of the dataset is missing.
    #[error("{path}: missing file of the {dataset} dataset")]
    MissingFile {
        /// The file looked for.
        path: PathBuf,
        /// Dataset name.
        dataset: &'static str,
    },
    /// An IDX file starts with the wrong magic number.
    #[error(
        "{path}: wrong magic number {found:#010x} (expected {expected:#010x}); \
         is this the right IDX file (images vs labels), and not an HTML error page?"
    )]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// Expected magic number.
        expected: u32,
        /// Magic number found.
        found: u32,
    },
    /// A file is shorter than its header announces.
    #[error("{path}: truncated: {actual} bytes, {expected} expected; delete it and fetch it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// A file is not in the expected format.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image and label files disagree on the number of examples.
    #[error(
        "{images} has {num_images} images but {labels} has {num_labels} labels; \
         the two files come from different splits or versions"
    )]
    CountMismatch {
        /// Image file.
        images: PathBuf,
        /// Label file.
        labels: PathBuf,
        /// Images in the image file.
        num_images: usize,
        /// Labels in the label file.
        num_labels: usize,
    },
    /// The dataset is nowhere to be found and could not be downloaded.
    #[error(
        "the {dataset} dataset was not found (searched: {searched}) and could not be downloaded \
         ({download_error}). To get it: {hint}",
        searched = .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Dataset name.
        dataset: &'static str,
        /// Folders searched.
        searched: Vec<PathBuf>,
        /// How to get the data.
        hint: String,
        /// Why downloading failed or was not tried.
        download_error: String,
    },
    /// `--data-dir` was given but does not hold the dataset.
    #[error(
        "{dir} does not hold the {dataset} dataset (looked in it and in its sub-folder named \
         after the dataset). To get it: {hint}",
        dir = .dir.display()
    )]
    NotInDataDir {
        /// The folder given.
        dir: PathBuf,
        /// Dataset name.
        dataset: &'static str,
        /// How to get the data.
        hint: String,
    },
    /// Normalisation constants that do not fit the images.
    #[error(
        "normalisation needs 1 or {channels} finite mean values and positive std values, got mean {mean:?}, std {std:?}"
    )]
    InvalidNormalization {
        /// Channels of the images.
        channels: usize,
        /// Means given.
        mean: Vec<f32>,
        /// Standard deviations given.
        std: Vec<f32>,
    },
    /// A download failed.
    #[error("downloading {url} failed: {reason}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Downloaded bytes do not match the published checksum.
    #[error(
        "{url}: MD5 {actual} does not match the published {expected}; the download is corrupt or not the original file"
    )]
    Checksum {
        /// The address.
        url: String,
        /// Published MD5.
        expected: String,
        /// MD5 of the bytes received.
        actual: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

//! The binary format of CIFAR-10 and CIFAR-100 (Krizhevsky 2009).
//!
//! Each record is the label byte(s) followed by 3072 bytes: the 1024 red, then 1024 green,
//! then 1024 blue values of a 32×32 image in row-major order (already `[C, H, W]`).
//! CIFAR-10 records have one label byte (0–9, `data_batch_{1..5}.bin`, `test_batch.bin`);
//! CIFAR-100 records have two, the coarse (0–19) then the fine label (0–99, `train.bin`,
//! `test.bin`). xbn uses the fine labels.

use std::path::Path;

use super::DataError;

/// Bytes of one CIFAR image (`3 × 32 × 32`).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR variant a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// One label byte, 10 classes.
    Cifar10,
    /// Two label bytes (coarse, fine), 100 fine classes.
    Cifar100,
}

impl CifarKind {
    /// Label bytes before each image.
    pub fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    /// Bytes of one record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    /// Number of (fine) classes.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
}

/// Parses the records of one CIFAR binary file: `(labels, pixels)` with pixels in
/// `[N, 3, 32, 32]` order.
///
/// # Errors
/// [`DataError::Malformed`] naming `path` when the size is not a whole number of records
/// or a label is out of range; [`DataError::Io`] when the file cannot be read.
pub fn read_file(path: &Path, kind: CifarKind) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes, kind, path)
}

/// Parses CIFAR records from memory; `path` names the source in errors.
///
/// # Errors
/// See [`read_file`].
pub fn parse(bytes: &[u8], kind: CifarKind, path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let record = kind.record_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes is not a whole number of {record}-byte {kind:?} records \
                 ({} label byte(s) + {IMAGE_BYTES} pixels); is this the binary version \
                 (cifar-*-binary.tar.gz), not the Python one?",
                bytes.len(),
                kind.label_bytes()
            ),
        });
    }
    let n = bytes.len() / record;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[kind.label_bytes() - 1];
        if label as usize >= kind.num_classes() {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "record {i} has label {label}, but {kind:?} has {} classes",
                    kind.num_classes()
                ),
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&rec[kind.label_bytes()..]);
    }
    Ok((labels, pixels))
}

//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzip-compressed.
//!
//! An IDX file starts with a big-endian magic number `0x0000 TT DD` (`TT` = 0x08 for
//! unsigned bytes, `DD` = number of dimensions), then `DD` big-endian `u32` sizes, then the
//! data. Images are `[N, rows, cols]` (`0x00000803`), labels `[N]` (`0x00000801`).

use std::io::Read;
use std::path::Path;

use super::DataError;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads a whole file, decompressing it when it starts with the gzip magic `1f 8b`.
///
/// # Errors
/// [`DataError::Io`] naming the file, [`DataError::Malformed`] for a corrupt gzip stream.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Malformed {
                path: path.to_path_buf(),
                reason: format!("corrupt gzip stream ({e}); delete the file and fetch it again"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses the header of an IDX file and checks its size: returns the dimension sizes and
/// the data that follows.
///
/// # Errors
/// [`DataError::WrongMagic`], [`DataError::Truncated`] or [`DataError::Malformed`] (extra
/// bytes), each naming `path`.
pub fn parse<'a>(
    bytes: &'a [u8],
    expected_magic: u32,
    path: &Path,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let truncated = |expected: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        actual: bytes.len(),
    };
    if bytes.len() < 4 {
        return Err(truncated(4));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            expected: expected_magic,
            found: magic,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(truncated(header));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!("the header announces dims {dims:?}, too large to be an IDX file"),
        })?;
    if bytes.len() < expected {
        return Err(truncated(expected));
    }
    if bytes.len() > expected {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes after the {expected} the header announces; the file is not an IDX file of dims {dims:?}",
                bytes.len() - expected
            ),
        });
    }
    Ok((dims, &bytes[header..]))
}

/// Images of an IDX file: `(count, rows, cols, pixels)`, pixels in row-major order.
///
/// # Errors
/// See [`read_maybe_gzip`] and [`parse`].
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let bytes = read_maybe_gzip(path)?;
    let (dims, data) = parse(&bytes, IMAGES_MAGIC, path)?;
    Ok((dims[0], dims[1], dims[2], data.to_vec()))
}

/// Labels of an IDX file.
///
/// # Errors
/// See [`read_maybe_gzip`] and [`parse`].
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzip(path)?;
    let (_, data) = parse(&bytes, LABELS_MAGIC, path)?;
    Ok(data.to_vec())
}

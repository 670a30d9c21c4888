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

/// Most bytes one byte of deflate data can expand to (the format's limit is about 1032:1).
const MAX_DEFLATE_RATIO: usize = 1032;

/// Reads an IDX file, raw or gzip-compressed (it starts with the gzip magic `1f 8b`), and
/// checks it with [`parse`]: returns the dimension sizes and the data.
///
/// A compressed file is inflated only as far as its header announces (one byte more, to
/// detect extra data), and a header announcing more than the compressed bytes can hold is
/// refused before anything is allocated, so a corrupt or hostile file cannot exhaust
/// memory.
///
/// # Errors
/// [`DataError::Io`] naming the file, [`DataError::Malformed`] for a corrupt gzip stream
/// or an impossible header, and the errors of [`parse`].
pub fn read_idx(path: &Path, expected_magic: u32) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        let (dims, data) = parse(&raw, expected_magic, path)?;
        return Ok((dims, data.to_vec()));
    }
    let corrupt = |e: std::io::Error| DataError::Malformed {
        path: path.to_path_buf(),
        reason: format!("corrupt gzip stream ({e}); delete the file and fetch it again"),
    };
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]);
    // The magic number, then as many sizes as it announces (at most 255).
    let mut head = vec![0u8; 4];
    let got = read_up_to(&mut decoder, &mut head).map_err(corrupt)?;
    if got == 4 {
        let ndim = head[3] as usize;
        head.resize(4 + 4 * ndim, 0);
        read_up_to(&mut decoder, &mut head[4..]).map_err(corrupt)?;
    }
    let header = parse_header(&head, expected_magic, path)?;
    if header.total > raw.len().saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "the header announces {} bytes (dims {:?}), more than {} compressed bytes can hold; the file is corrupt",
                header.total,
                header.dims,
                raw.len()
            ),
        });
    }
    // Grown as the data inflates: a header may lie about the size (within the limit above).
    let mut bytes = Vec::with_capacity(header.total.min(raw.len().saturating_mul(8)));
    bytes.extend_from_slice(&head);
    let rest = (header.total - head.len()) as u64 + 1;
    decoder
        .take(rest)
        .read_to_end(&mut bytes)
        .map_err(corrupt)?;
    let (dims, _) = parse(&bytes, expected_magic, path)?;
    let data = bytes.split_off(header.len);
    Ok((dims, data))
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// An IDX header: dimension sizes, header length and the whole file's announced length.
struct Header {
    dims: Vec<usize>,
    len: usize,
    total: usize,
}

/// Parses the magic number and sizes at the start of `bytes` (which may hold only the
/// header).
fn parse_header(bytes: &[u8], expected_magic: u32, path: &Path) -> Result<Header, DataError> {
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
    let len = 4 + 4 * ndim;
    if bytes.len() < len {
        return Err(truncated(len));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(len))
        .ok_or_else(|| DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!("the header announces dims {dims:?}, too large to be an IDX file"),
        })?;
    Ok(Header { dims, len, total })
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
    let Header { dims, len, total } = parse_header(bytes, expected_magic, path)?;
    if bytes.len() < total {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: total,
            actual: bytes.len(),
        });
    }
    if bytes.len() > total {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes after the {total} the header announces; the file is not an IDX file of dims {dims:?}",
                bytes.len() - total
            ),
        });
    }
    Ok((dims, &bytes[len..]))
}

/// Images of an IDX file: `(count, rows, cols, pixels)`, pixels in row-major order.
///
/// # Errors
/// See [`read_idx`].
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (dims, data) = read_idx(path, IMAGES_MAGIC)?;
    Ok((dims[0], dims[1], dims[2], data))
}

/// Labels of an IDX file.
///
/// # Errors
/// See [`read_idx`].
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_idx(path, LABELS_MAGIC)?.1)
}

//! Downloading datasets from their canonical addresses, with a progress bar and an MD5
//! check.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::{DataError, DatasetKind};

/// Where a dataset is published and what its bytes must hash to.
#[derive(Clone, Debug)]
pub struct Source {
    /// Folder URL (IDX files are `<base><file>.gz`) or archive URL (CIFAR).
    pub base_url: String,
    /// `(file, md5)`: for IDX datasets the MD5 of the *decompressed* file (so re-gzipped
    /// mirrors such as Debian's are accepted); for CIFAR the MD5 of the archive.
    pub files: Vec<(&'static str, &'static str)>,
}

impl Source {
    /// The canonical source of `kind`.
    ///
    /// - MNIST: `https://ossci-datasets.s3.amazonaws.com/mnist/` (the PyTorch mirror of
    ///   yann.lecun.com), checksums of the original uncompressed files.
    /// - Fashion-MNIST: `http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/`
    ///   (zalandoresearch/fashion-mnist).
    /// - CIFAR-10/100: `https://www.cs.toronto.edu/~kriz/cifar-{10,100}-binary.tar.gz`.
    pub fn canonical(kind: DatasetKind) -> Self {
        let (base_url, files): (&str, Vec<(&'static str, &'static str)>) = match kind {
            DatasetKind::Mnist => (
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                vec![
                    (
                        "train-images-idx3-ubyte",
                        "6bbc9ace898e44ae57da46a324031adb",
                    ),
                    (
                        "train-labels-idx1-ubyte",
                        "a25bea736e30d166cdddb491f175f624",
                    ),
                    ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
                    ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
                ],
            ),
            DatasetKind::FashionMnist => (
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                vec![
                    (
                        "train-images-idx3-ubyte",
                        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                    ),
                    (
                        "train-labels-idx1-ubyte",
                        "9018921c3c673c538a1fc5bad174d6f9",
                    ),
                    ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
                    ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
                ],
            ),
            DatasetKind::Cifar10 => (
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                vec![("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")],
            ),
            DatasetKind::Cifar100 => (
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                vec![(
                    "cifar-100-binary.tar.gz",
                    "03b5dce01913d631647c71ecec9e9cb8",
                )],
            ),
        };
        Self {
            base_url: base_url.to_string(),
            files,
        }
    }

    /// The same files from another address (a local mirror).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

/// MD5 of `bytes` as lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fetch(url: &str) -> Result<Vec<u8>, DataError> {
    let err = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| err(e.to_string()))?;
    let body = response.into_body();
    let total = body.content_length();
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    let mut reader = body.into_reader();
    let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| err(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish();
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::fsutil::write_atomic(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Downloads `kind` from `source` into `dir` (created if needed), checking every MD5.
/// IDX files are stored gzip-compressed as downloaded; CIFAR archives are unpacked to the
/// `.bin` files xbn reads.
///
/// # Errors
/// [`DataError::Download`] when a request fails, [`DataError::Checksum`] when the bytes do
/// not hash to the published MD5, [`DataError::Io`] when `dir` cannot be written.
pub fn download(kind: DatasetKind, source: &Source, dir: &Path) -> Result<PathBuf, DataError> {
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    if kind.is_idx() {
        for (file, md5) in &source.files {
            let url = format!("{}{file}.gz", source.base_url);
            let gz = fetch(&url)?;
            let path = dir.join(format!("{file}.gz"));
            let mut raw = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut raw)
                .map_err(|e| DataError::Download {
                    url: url.clone(),
                    reason: format!("not a gzip file ({e})"),
                })?;
            check_md5(&url, &raw, md5)?;
            write_atomic(&path, &gz)?;
        }
    } else {
        let (_, md5) = source.files[0];
        let url = source.base_url.clone();
        let archive = fetch(&url)?;
        check_md5(&url, &archive, md5)?;
        let wanted: Vec<&str> = [super::Split::Train, super::Split::Test]
            .iter()
            .flat_map(|&s| kind.files(s))
            .collect();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
        let entries = tar.entries().map_err(|e| DataError::io(dir, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| DataError::io(dir, e))?;
            let name = entry
                .path()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            if let Some(name) = name.filter(|n| wanted.contains(&n.as_str())) {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| DataError::io(dir, e))?;
                write_atomic(&dir.join(&name), &bytes)?;
            }
        }
    }
    Ok(dir.to_path_buf())
}

fn check_md5(url: &str, bytes: &[u8], expected: &str) -> Result<(), DataError> {
    let actual = md5_hex(bytes);
    if actual != expected {
        return Err(DataError::Checksum {
            url: url.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

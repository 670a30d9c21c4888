//! Finding a dataset on disk, or downloading it into the cache.

use std::path::{Path, PathBuf};

use super::download::{Source, download};
use super::{DataError, DatasetKind, Split};

/// Environment variable naming a data folder.
pub const DATA_ENV: &str = "XBN_DATA";

/// Where the Debian/Ubuntu package `dataset-fashion-mnist` installs Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Decides where a dataset is read from, in this order:
///
/// 1. the folder given on the command line (`--data-dir`): when it is given, the data must
///    be there (no fallback to other folders or to a download, so a typo never silently
///    trains on other data);
/// 2. the folder in `$XBN_DATA`;
/// 3. for Fashion-MNIST, the Debian package's folder `/usr/share/datasets/fashion-mnist`
///    (`apt-get install dataset-fashion-mnist`);
/// 4. the cache folder (`$XDG_CACHE_HOME/xbn` or `~/.cache/xbn`), filled by a download
///    from the canonical address (progress bar, MD5 check) when allowed.
///
/// Each folder `D` matches when it holds the dataset's files directly, or in `D/<name>`
/// (`D/fashion-mnist`, `D/cifar10`), or, for CIFAR, in the archive's folder
/// (`D/cifar-10-batches-bin`, `D/cifar-100-binary`).
#[derive(Clone, Debug)]
pub struct DataLocator {
    /// The `--data-dir` folder.
    pub data_dir: Option<PathBuf>,
    /// The `$XBN_DATA` folder.
    pub env_dir: Option<PathBuf>,
    /// System folders per dataset (the Debian package path).
    pub system_dirs: Vec<(DatasetKind, PathBuf)>,
    /// Cache folder for downloads.
    pub cache_dir: Option<PathBuf>,
    /// Whether a missing dataset may be downloaded.
    pub download: bool,
    /// Override of the download address (a mirror); `None` uses [`Source::canonical`].
    pub mirror: Option<String>,
}

impl DataLocator {
    /// The default order, reading `$XBN_DATA`, `$XDG_CACHE_HOME` and `$HOME`.
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        let env_dir = std::env::var_os(DATA_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let cache_dir = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("xbn"));
        Self {
            data_dir,
            env_dir,
            system_dirs: vec![(
                DatasetKind::FashionMnist,
                PathBuf::from(DEBIAN_FASHION_MNIST),
            )],
            cache_dir,
            download: true,
            mirror: None,
        }
    }

    /// Allows or forbids downloading.
    pub fn with_download(mut self, download: bool) -> Self {
        self.download = download;
        self
    }

    fn candidates(dir: &Path, kind: DatasetKind) -> Vec<PathBuf> {
        let mut c = vec![dir.to_path_buf(), dir.join(kind.name())];
        match kind {
            DatasetKind::Cifar10 => c.push(dir.join("cifar-10-batches-bin")),
            DatasetKind::Cifar100 => c.push(dir.join("cifar-100-binary")),
            _ => {}
        }
        c
    }

    /// The folder holding both splits of `kind`; see [`DataLocator::locate_splits`].
    ///
    /// # Errors
    /// See [`DataLocator::locate_splits`].
    pub fn locate(&self, kind: DatasetKind) -> Result<PathBuf, DataError> {
        self.locate_splits(kind, &[Split::Train, Split::Test])
    }

    /// The folder holding the files of `splits` of `kind`: the first folder of the search
    /// order that has them all. When none has them and downloading is allowed (and no
    /// `--data-dir` was given), the dataset is downloaded into the cache folder.
    ///
    /// # Errors
    /// [`DataError::NotInDataDir`] when `data_dir` is set but lacks the files;
    /// [`DataError::NotFound`] listing every folder searched, how to get the data, and why
    /// the download failed or was not tried.
    pub fn locate_splits(&self, kind: DatasetKind, splits: &[Split]) -> Result<PathBuf, DataError> {
        let has_all = |dir: &Path| {
            splits
                .iter()
                .flat_map(|&s| kind.files(s))
                .all(|f| kind.find_file(dir, f).is_some())
        };
        let mut roots: Vec<PathBuf> = Vec::new();
        roots.extend(self.env_dir.clone());
        roots.extend(
            self.system_dirs
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, d)| d.clone()),
        );
        roots.extend(self.cache_dir.clone());
        if let Some(dir) = &self.data_dir {
            return Self::candidates(dir, kind)
                .into_iter()
                .find(|d| has_all(d))
                .ok_or_else(|| {
                    // The data may be in one of the other places: say so rather than
                    // telling the user to fetch it again.
                    let elsewhere = roots
                        .iter()
                        .flat_map(|r| Self::candidates(r, kind))
                        .find(|d| has_all(d));
                    let hint = match elsewhere {
                        Some(found) => format!(
                            "the files are in {}: pass that folder, or omit --data-dir to use it",
                            found.display()
                        ),
                        None => format!(
                            "point --data-dir at the folder holding them, or omit --data-dir to \
                             search the default places{}; otherwise {}",
                            if self.download { " and download" } else { "" },
                            hint(kind)
                        ),
                    };
                    DataError::NotInDataDir {
                        dir: dir.clone(),
                        dataset: kind.name(),
                        hint,
                    }
                });
        }
        let mut searched = Vec::new();
        for root in &roots {
            for dir in Self::candidates(root, kind) {
                if has_all(&dir) {
                    return Ok(dir);
                }
                searched.push(dir);
            }
        }
        let download_error = match (&self.cache_dir, self.download) {
            (Some(cache), true) => {
                let source = match &self.mirror {
                    Some(url) => Source::canonical(kind).with_base_url(url.clone()),
                    None => Source::canonical(kind),
                };
                eprintln!(
                    "{kind} not found locally; downloading from {} into {}",
                    source.base_url,
                    cache.join(kind.name()).display()
                );
                match download(kind, &source, &cache.join(kind.name())) {
                    Ok(dir) => return Ok(dir),
                    Err(e) => e.to_string(),
                }
            }
            (None, true) => "no cache folder ($HOME and $XDG_CACHE_HOME are unset)".to_string(),
            (_, false) => "downloading is disabled (--no-download)".to_string(),
        };
        Err(DataError::NotFound {
            dataset: kind.name(),
            searched,
            hint: hint(kind),
            download_error,
        })
    }
}

fn hint(kind: DatasetKind) -> String {
    let files = [Split::Train, Split::Test]
        .iter()
        .flat_map(|&s| kind.files(s))
        .collect::<Vec<_>>()
        .join(", ");
    let apt = if kind == DatasetKind::FashionMnist {
        "run `sudo apt-get install dataset-fashion-mnist`, or "
    } else {
        ""
    };
    let gz = if kind.is_idx() {
        " (optionally .gz)"
    } else {
        ""
    };
    format!(
        "{apt}put {files}{gz} in a folder and pass it with --data-dir DIR or ${DATA_ENV}=DIR, \
         or run once with network access so xbn can download it"
    )
}

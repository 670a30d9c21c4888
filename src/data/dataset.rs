//! The image classification datasets xbn reads, held in memory as bytes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use serde::{Deserialize, Serialize};

use super::cifar::{self, CifarKind};
use super::{DataError, idx};

/// A dataset xbn can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST handwritten digits (IDX), 28×28 grey, 10 classes, 60,000 / 10,000.
    Mnist,
    /// Fashion-MNIST (IDX), 28×28 grey, 10 classes, 60,000 / 10,000.
    FashionMnist,
    /// CIFAR-10 (binary version), 32×32 RGB, 10 classes, 50,000 / 10,000.
    Cifar10,
    /// CIFAR-100 (binary version, fine labels), 32×32 RGB, 100 classes, 50,000 / 10,000.
    Cifar100,
}

/// Training or test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl DatasetKind {
    /// Every dataset.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// Command-line name and data sub-folder name (`fashion-mnist`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// Image shape `[C, H, W]`.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => [1, 28, 28],
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => [3, 32, 32],
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// The class names, in label order: the digits for MNIST, Fashion-MNIST's ten article
    /// names (Xiao et al. 2017), CIFAR-10's ten names and CIFAR-100's hundred fine-label
    /// names (`batches.meta` / `meta` of the binary versions).
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            DatasetKind::Cifar100 => &CIFAR100_CLASSES,
        }
    }

    /// Per-channel mean of the training images, in `[0, 1]` units (torchvision's usual
    /// constants: MNIST 0.1307, Fashion-MNIST 0.2860, CIFAR-10 (0.4914, 0.4822, 0.4465),
    /// CIFAR-100 (0.5071, 0.4865, 0.4409)).
    pub fn mean(self) -> &'static [f32] {
        match self {
            DatasetKind::Mnist => &[0.1307],
            DatasetKind::FashionMnist => &[0.2860],
            DatasetKind::Cifar10 => &[0.4914, 0.4822, 0.4465],
            DatasetKind::Cifar100 => &[0.5071, 0.4865, 0.4409],
        }
    }

    /// Per-channel standard deviation of the training images, in `[0, 1]` units.
    pub fn std(self) -> &'static [f32] {
        match self {
            DatasetKind::Mnist => &[0.3081],
            DatasetKind::FashionMnist => &[0.3530],
            DatasetKind::Cifar10 => &[0.2470, 0.2435, 0.2616],
            DatasetKind::Cifar100 => &[0.2673, 0.2564, 0.2762],
        }
    }

    /// Files of a split, relative to the dataset folder. IDX files may also be stored
    /// with a `.gz` suffix.
    pub fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (DatasetKind::Mnist | DatasetKind::FashionMnist, Split::Train) => {
                vec!["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
            }
            (DatasetKind::Mnist | DatasetKind::FashionMnist, Split::Test) => {
                vec!["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
            }
            (DatasetKind::Cifar10, Split::Train) => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            (DatasetKind::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (DatasetKind::Cifar100, Split::Train) => vec!["train.bin"],
            (DatasetKind::Cifar100, Split::Test) => vec!["test.bin"],
        }
    }

    /// Whether the files are IDX (which may be gzip-compressed).
    pub fn is_idx(self) -> bool {
        matches!(self, DatasetKind::Mnist | DatasetKind::FashionMnist)
    }

    /// The path of `file` in `dir`, trying `file` then `file.gz` for IDX datasets.
    pub fn find_file(self, dir: &Path, file: &str) -> Option<PathBuf> {
        let plain = dir.join(file);
        if plain.is_file() {
            return Some(plain);
        }
        let gz = dir.join(format!("{file}.gz"));
        (self.is_idx() && gz.is_file()).then_some(gz)
    }
}

/// CIFAR-100's fine labels, in label order.
const CIFAR100_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown dataset '{s}': use mnist, fashion-mnist, cifar10 or cifar100")
            })
    }
}

/// One image and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageItem {
    /// Pixels `[C, H, W]`, row-major, 0–255.
    pub pixels: Vec<u8>,
    /// Class index.
    pub label: usize,
}

/// An in-memory image classification dataset: `N` images of shape `[C, H, W]` (bytes)
/// with their labels. Cheap to clone (the data is shared).
#[derive(Clone, Debug)]
pub struct ImageDataset {
    shape: [usize; 3],
    num_classes: usize,
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    indices: Option<Arc<Vec<usize>>>,
}

impl ImageDataset {
    /// A dataset from raw parts: `pixels` holds `labels.len()` images of `shape`.
    ///
    /// # Errors
    /// [`DataError::Malformed`] when the byte count is not `labels.len() · C·H·W` or a
    /// label is not below `num_classes`.
    pub fn new(
        shape: [usize; 3],
        num_classes: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Result<Self, DataError> {
        Self::from_source(shape, num_classes, pixels, labels, Path::new("<memory>"))
    }

    /// Like [`ImageDataset::new`], naming `source` in errors.
    fn from_source(
        shape: [usize; 3],
        num_classes: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
        source: &Path,
    ) -> Result<Self, DataError> {
        let per_image: usize = shape.iter().product();
        let bad = |reason: String| DataError::Malformed {
            path: source.to_path_buf(),
            reason,
        };
        if pixels.len() != labels.len() * per_image {
            return Err(bad(format!(
                "{} pixel bytes for {} labels of images {shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= num_classes)
        {
            return Err(bad(format!(
                "label {l} of example {i} is out of range for {num_classes} classes"
            )));
        }
        Ok(Self {
            shape,
            num_classes,
            pixels: Arc::new(pixels),
            labels: Arc::new(labels),
            indices: None,
        })
    }

    /// Reads a split of `kind` from the folder `dir` (see [`DatasetKind::files`]).
    ///
    /// # Errors
    /// A [`DataError`] naming the file that is missing, unreadable or malformed.
    pub fn load(kind: DatasetKind, split: Split, dir: &Path) -> Result<Self, DataError> {
        let files: Vec<PathBuf> = kind
            .files(split)
            .into_iter()
            .map(|f| {
                kind.find_file(dir, f)
                    .ok_or_else(|| DataError::MissingFile {
                        path: dir.join(f),
                        dataset: kind.name(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let shape = kind.image_shape();
        let (pixels, labels) = if kind.is_idx() {
            let (n, rows, cols, pixels) = idx::read_images(&files[0])?;
            if [rows, cols] != [shape[1], shape[2]] {
                return Err(DataError::Malformed {
                    path: files[0].clone(),
                    reason: format!(
                        "images are {rows}×{cols}, {kind} images are {}×{}",
                        shape[1], shape[2]
                    ),
                });
            }
            let labels = idx::read_labels(&files[1])?;
            if labels.len() != n {
                return Err(DataError::CountMismatch {
                    images: files[0].clone(),
                    labels: files[1].clone(),
                    num_images: n,
                    num_labels: labels.len(),
                });
            }
            if let Some(l) = labels.iter().find(|&&l| l as usize >= kind.num_classes()) {
                return Err(DataError::Malformed {
                    path: files[1].clone(),
                    reason: format!(
                        "label {l} is out of range for {} classes",
                        kind.num_classes()
                    ),
                });
            }
            (pixels, labels)
        } else {
            let cifar_kind = match kind {
                DatasetKind::Cifar100 => CifarKind::Cifar100,
                _ => CifarKind::Cifar10,
            };
            let mut pixels = Vec::new();
            let mut labels = Vec::new();
            for f in &files {
                let (l, p) = cifar::read_file(f, cifar_kind)?;
                labels.extend(l);
                pixels.extend(p);
            }
            (pixels, labels)
        };
        let source = files.last().expect("every split has files");
        Self::from_source(shape, kind.num_classes(), pixels, labels, source)
    }

    /// Image shape `[C, H, W]`.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The dataset restricted to `indices` (indices into this dataset, repeats allowed).
    ///
    /// # Errors
    /// [`DataError::Malformed`] when an index is out of range.
    pub fn subset(&self, indices: Vec<usize>) -> Result<Self, DataError> {
        let len = self.len();
        if let Some(i) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::Malformed {
                path: PathBuf::from("<subset>"),
                reason: format!("index {i} is out of range for a dataset of {len} images"),
            });
        }
        let mapped = indices.into_iter().map(|i| self.raw_index(i)).collect();
        Ok(Self {
            indices: Some(Arc::new(mapped)),
            ..self.clone()
        })
    }

    fn raw_index(&self, index: usize) -> usize {
        match &self.indices {
            Some(ix) => ix[index],
            None => index,
        }
    }

    /// Label of every image, in order.
    pub fn labels(&self) -> Vec<usize> {
        (0..self.len())
            .map(|i| self.labels[self.raw_index(i)] as usize)
            .collect()
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        if index >= self.len() {
            return Err(DatasetError::new(DataError::Malformed {
                path: PathBuf::from("<dataset>"),
                reason: format!("index {index} is out of range for {} images", self.len()),
            }));
        }
        let raw = self.raw_index(index);
        let size: usize = self.shape.iter().product();
        Ok(ImageItem {
            pixels: self.pixels[raw * size..(raw + 1) * size].to_vec(),
            label: self.labels[raw] as usize,
        })
    }

    fn len(&self) -> usize {
        match &self.indices {
            Some(ix) => ix.len(),
            None => self.labels.len(),
        }
    }
}

//! Dataset readers, data location, batching and augmentation.

mod common;

use std::io::Write;
use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::Device;
use common::{fixture, to_vec};
use serde_json::Value;
use xbn::data::{
    Augmentation, DataError, DataLocator, DatasetKind, ImageBatcher, ImageDataset, ImageItem,
    Split, cifar, download::md5_hex, eval_loader, idx, train_loader,
};

fn expected(dataset: &str) -> Value {
    let path = fixture(&format!("{dataset}/expected.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn as_usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Checks labels and probed pixels of `ds` (images in file order) against expected.json.
fn check_against(ds: &ImageDataset, exp: &Value, files: &[&str]) {
    let positions: Vec<Vec<usize>> = exp["probe_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_usizes)
        .collect();
    let [c, h, w] = ds.image_shape();
    let mut index = 0;
    for file in files {
        let labels = as_usizes(&exp[*file]["labels"]);
        let probes: Vec<Vec<usize>> = exp[*file]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(as_usizes)
            .collect();
        for (label, probe) in labels.iter().zip(&probes) {
            let item = ds.get(index).unwrap();
            assert_eq!(item.label, *label, "{file} image {index}");
            assert_eq!(item.pixels.len(), c * h * w);
            for (pos, &value) in positions.iter().zip(probe) {
                let (ch, r, k) = if pos.len() == 3 {
                    (pos[0], pos[1], pos[2])
                } else {
                    (0, pos[0], pos[1])
                };
                assert_eq!(
                    item.pixels[ch * h * w + r * w + k] as usize,
                    value,
                    "{file} image {index} at {pos:?}"
                );
            }
            index += 1;
        }
    }
    assert_eq!(ds.len(), index);
}

#[test]
fn cifar10_binary_reader_matches_independent_writer() {
    let dir = fixture("cifar10");
    let exp = expected("cifar10");
    let train = ImageDataset::load(DatasetKind::Cifar10, Split::Train, &dir).unwrap();
    assert_eq!(train.image_shape(), [3, 32, 32]);
    assert_eq!(train.num_classes(), 10);
    let files: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    check_against(&train, &exp, &files);
    let test = ImageDataset::load(DatasetKind::Cifar10, Split::Test, &dir).unwrap();
    check_against(&test, &exp, &["test_batch.bin"]);
}

#[test]
fn cifar100_binary_reader_uses_fine_labels() {
    let dir = fixture("cifar100");
    let exp = expected("cifar100");
    let train = ImageDataset::load(DatasetKind::Cifar100, Split::Train, &dir).unwrap();
    assert_eq!(train.num_classes(), 100);
    check_against(&train, &exp, &["train.bin"]);
    let test = ImageDataset::load(DatasetKind::Cifar100, Split::Test, &dir).unwrap();
    check_against(&test, &exp, &["test.bin"]);
}

#[test]
fn idx_reader_reads_gzip_and_raw_files() {
    let dir = fixture("fashion-mnist");
    let exp = expected("fashion-mnist");
    // The fixture's train files are gzip-compressed, the test files are raw.
    let train = ImageDataset::load(DatasetKind::FashionMnist, Split::Train, &dir).unwrap();
    assert_eq!(train.image_shape(), [1, 28, 28]);
    check_against(&train, &exp, &["train"]);
    let test = ImageDataset::load(DatasetKind::FashionMnist, Split::Test, &dir).unwrap();
    check_against(&test, &exp, &["t10k"]);
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803u32, n, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    b.extend(vec![7u8; (n * rows * cols) as usize]);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0801u32, labels.len() as u32] {
        b.extend(v.to_be_bytes());
    }
    b.extend(labels);
    b
}

#[test]
fn idx_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("train-images-idx3-ubyte");

    // Labels file where images are expected: wrong magic.
    write(&p, &idx_labels(&[1, 2, 3]));
    let e = idx::read_images(&p).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::WrongMagic {
                found: 0x0801,
                expected: 0x0803,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");

    // Truncated: header says 4 images, only 3 present.
    let mut bytes = idx_images(4, 28, 28);
    bytes.truncate(bytes.len() - 28 * 28);
    write(&p, &bytes);
    let e = idx::read_images(&p).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");

    // Trailing garbage: mis-sized.
    let mut bytes = idx_images(1, 28, 28);
    bytes.extend([0, 0, 0]);
    write(&p, &bytes);
    assert!(matches!(
        idx::read_images(&p).unwrap_err(),
        DataError::Malformed { .. }
    ));

    // Corrupt gzip.
    let gz = tmp.path().join("x.gz");
    write(&gz, &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
    assert!(matches!(
        idx::read_images(&gz).unwrap_err(),
        DataError::Malformed { .. }
    ));

    // Missing file.
    let e = idx::read_labels(&tmp.path().join("nope")).unwrap_err();
    assert!(
        matches!(e, DataError::Io { .. }) && e.to_string().contains("nope"),
        "{e}"
    );
}

#[test]
fn idx_dataset_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 2 images, 3 labels.
    write(&d.join("t10k-images-idx3-ubyte"), &idx_images(2, 28, 28));
    write(&d.join("t10k-labels-idx1-ubyte"), &idx_labels(&[1, 2, 3]));
    let e = ImageDataset::load(DatasetKind::Mnist, Split::Test, d).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                num_images: 2,
                num_labels: 3,
                ..
            }
        ),
        "{e}"
    );
    // Wrong image size for MNIST.
    write(&d.join("t10k-images-idx3-ubyte"), &idx_images(3, 32, 32));
    let e = ImageDataset::load(DatasetKind::Mnist, Split::Test, d).unwrap_err();
    assert!(
        matches!(e, DataError::Malformed { .. }) && e.to_string().contains("32×32"),
        "{e}"
    );
    // Label out of range.
    write(&d.join("t10k-images-idx3-ubyte"), &idx_images(3, 28, 28));
    write(&d.join("t10k-labels-idx1-ubyte"), &idx_labels(&[1, 2, 10]));
    let e = ImageDataset::load(DatasetKind::Mnist, Split::Test, d).unwrap_err();
    assert!(e.to_string().contains("label 10"), "{e}");
    // Missing files.
    let e = ImageDataset::load(DatasetKind::Mnist, Split::Train, d).unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
}

#[test]
fn cifar_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("data_batch_1.bin");
    // One byte short of two records.
    write(&p, &vec![1u8; 2 * 3073 - 1]);
    let e = cifar::read_file(&p, cifar::CifarKind::Cifar10).unwrap_err();
    assert!(matches!(e, DataError::Malformed { .. }), "{e}");
    assert!(
        e.to_string().contains("data_batch_1.bin") && e.to_string().contains("3073"),
        "{e}"
    );
    // A CIFAR-100 file read as CIFAR-10 is mis-sized.
    write(&p, &vec![1u8; 3 * 3074]);
    assert!(cifar::read_file(&p, cifar::CifarKind::Cifar10).is_err());
    // Label 10 in CIFAR-10.
    let mut rec = vec![10u8];
    rec.extend(vec![0u8; 3072]);
    write(&p, &rec);
    let e = cifar::read_file(&p, cifar::CifarKind::Cifar10).unwrap_err();
    assert!(e.to_string().contains("label 10"), "{e}");
    // Empty file.
    write(&p, &[]);
    assert!(cifar::read_file(&p, cifar::CifarKind::Cifar10).is_err());
}

#[test]
fn locator_search_order_and_offline_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    // Fixture root holds `cifar10/`: found through the sub-folder rule.
    let locator = DataLocator {
        data_dir: Some(fixture("")),
        env_dir: Some(empty.clone()),
        system_dirs: vec![],
        cache_dir: None,
        download: false,
        mirror: None,
    };
    assert_eq!(
        locator.locate(DatasetKind::Cifar10).unwrap(),
        fixture("cifar10")
    );
    // $XBN_DATA, then the system folder.
    let locator = DataLocator {
        data_dir: None,
        env_dir: Some(fixture("")),
        system_dirs: vec![(DatasetKind::FashionMnist, empty.clone())],
        ..locator
    };
    assert_eq!(
        locator.locate(DatasetKind::FashionMnist).unwrap(),
        fixture("fashion-mnist")
    );
    let system_first = DataLocator {
        env_dir: Some(empty.clone()),
        system_dirs: vec![(DatasetKind::FashionMnist, fixture("fashion-mnist"))],
        ..locator.clone()
    };
    assert_eq!(
        system_first.locate(DatasetKind::FashionMnist).unwrap(),
        fixture("fashion-mnist")
    );

    // A --data-dir without the data is an error naming it; no fallback to other folders.
    let explicit = DataLocator {
        data_dir: Some(empty.clone()),
        ..locator.clone()
    };
    let e = explicit.locate(DatasetKind::FashionMnist).unwrap_err();
    assert!(matches!(e, DataError::NotInDataDir { .. }), "{e}");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
    // ... but it points at the folder of the search order that does hold the data.
    assert!(
        e.to_string().contains(&format!(
            "the files are in {}",
            fixture("fashion-mnist").display()
        )),
        "{e}"
    );

    // The test split alone is enough when only it is asked for.
    let test_only = tmp.path().join("test-only");
    std::fs::create_dir_all(&test_only).unwrap();
    std::fs::copy(
        fixture("cifar10/test_batch.bin"),
        test_only.join("test_batch.bin"),
    )
    .unwrap();
    let only = DataLocator {
        data_dir: Some(test_only.clone()),
        ..locator.clone()
    };
    assert_eq!(
        only.locate_splits(DatasetKind::Cifar10, &[Split::Test])
            .unwrap(),
        test_only
    );
    assert!(only.locate(DatasetKind::Cifar10).is_err());

    // Nothing anywhere and downloading disabled: a clear error.
    let offline = DataLocator {
        data_dir: None,
        env_dir: None,
        system_dirs: vec![(DatasetKind::FashionMnist, empty.join("sys"))],
        cache_dir: Some(tmp.path().join("cache")),
        download: false,
        mirror: None,
    };
    let e = offline.locate(DatasetKind::FashionMnist).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::NotFound { .. }));
    for needle in [
        "fashion-mnist",
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
        "XBN_DATA",
        "--no-download",
        "train-images-idx3-ubyte",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }

    // Downloading from an unreachable address: the error says why.
    let unreachable = DataLocator {
        download: true,
        mirror: Some("http://127.0.0.1:9/".into()),
        ..offline
    };
    let msg = unreachable
        .locate(DatasetKind::Mnist)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("http://127.0.0.1:9/train-images-idx3-ubyte.gz"),
        "{msg}"
    );
    assert!(
        !tmp.path()
            .join("cache/mnist/train-images-idx3-ubyte.gz")
            .exists()
    );
}

#[test]
fn md5_of_known_strings() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
}

fn item(pixels: Vec<u8>, label: usize) -> ImageItem {
    ImageItem { pixels, label }
}

#[test]
fn batcher_normalises_per_channel() {
    let device = Device::flex();
    let batcher = ImageBatcher::new([2, 1, 2], &[0.5, 0.0], &[0.5, 1.0]).unwrap();
    let batch = batcher.batch(vec![item(vec![0, 255, 51, 255], 3)], &device);
    assert_eq!(batch.images.dims(), [1, 2, 1, 2]);
    let v = to_vec(batch.images);
    let expected = [-1.0, 1.0, 0.2, 1.0];
    for (a, e) in v.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{v:?}");
    }
    let t: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
    assert_eq!(t, [3]);
}

#[test]
fn augmentation_is_a_padded_crop_and_a_flip() {
    let device = Device::flex();
    let (h, w) = (6, 5);
    let pixels: Vec<u8> = (0..(h * w) as u8).map(|v| v + 1).collect();
    let aug = Augmentation {
        crop_padding: 2,
        horizontal_flip: true,
    };
    let batcher = ImageBatcher::new([1, h, w], &[0.0], &[1.0 / 255.0])
        .unwrap()
        .with_augmentation(aug.clone(), 7);
    let items = vec![item(pixels.clone(), 0); 64];
    let out = to_vec(batcher.batch(items.clone(), &device).images);
    let mut saw_flip = false;
    let mut saw_shift = false;
    for img in out.chunks(h * w) {
        let img: Vec<u8> = img.iter().map(|&v| v.round() as u8).collect();
        // Every output must be some (dy, dx, flip) crop of the zero-padded image.
        let found = (0..=4)
            .flat_map(|dy| (0..=4).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, flip)| {
                (0..h).all(|y| {
                    (0..w).all(|x| {
                        let xx = if flip { w - 1 - x } else { x };
                        let (sy, sx) =
                            (y as isize + dy as isize - 2, xx as isize + dx as isize - 2);
                        let v = if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                            pixels[sy as usize * w + sx as usize]
                        } else {
                            0
                        };
                        img[y * w + x] == v
                    })
                })
            });
        let (dy, dx, flip) = found.expect("output is a padded crop, maybe flipped");
        saw_flip |= flip;
        saw_shift |= (dy, dx) != (2, 2);
    }
    assert!(saw_flip && saw_shift);
    // Seeded: the same seed gives the same batch, another seed another one.
    let again = ImageBatcher::new([1, h, w], &[0.0], &[1.0 / 255.0])
        .unwrap()
        .with_augmentation(aug.clone(), 7);
    assert_eq!(to_vec(again.batch(items.clone(), &device).images), out);
    let other = ImageBatcher::new([1, h, w], &[0.0], &[1.0 / 255.0])
        .unwrap()
        .with_augmentation(aug, 8);
    assert_ne!(to_vec(other.batch(items, &device).images), out);
    // Standard recipes: no flip for 28×28 data.
    assert!(!Augmentation::standard(DatasetKind::FashionMnist).horizontal_flip);
    assert!(Augmentation::standard(DatasetKind::Cifar10).horizontal_flip);
}

#[test]
fn training_batches_are_on_the_autodiff_device_and_train_batch_norm() {
    let dataset =
        ImageDataset::load(DatasetKind::Cifar10, Split::Train, &fixture("cifar10")).unwrap();
    let device = Device::flex();
    let loader = train_loader(
        dataset.clone(),
        DatasetKind::Cifar10,
        None,
        4,
        0,
        None,
        &device,
    );
    let batch = loader.iter().next().unwrap().unwrap();
    assert!(
        batch.images.device().is_autodiff(),
        "training batches must be on the autodiff device"
    );

    // A BatchNorm network fed this batch runs in training mode: running statistics move.
    let model = xbn::models::ResNetConfig::cifar(8)
        .unwrap()
        .init(&device.clone().autodiff())
        .unwrap();
    let before = running_mean(&model);
    let _ = model.forward(batch.images.clone());
    assert_ne!(
        running_mean(&model.valid()),
        before,
        "BN did not train on a training batch"
    );

    // Evaluation batches are plain: BN uses its estimates and leaves them alone.
    let loader = eval_loader(dataset, DatasetKind::Cifar10, 4, &device.clone().autodiff());
    let batch = loader.iter().next().unwrap().unwrap();
    assert!(!batch.images.device().is_autodiff());
    let model = model.valid();
    let before = running_mean(&model);
    let _ = model.forward(batch.images);
    assert_eq!(running_mean(&model), before);
}

fn running_mean(model: &xbn::models::ResNet) -> Vec<f32> {
    let bn = model.bn1.as_batch_norm().unwrap();
    to_vec(bn.running_mean.as_ref().unwrap().value())
}

#[test]
fn subsets_and_limits() {
    let dataset =
        ImageDataset::load(DatasetKind::Cifar10, Split::Train, &fixture("cifar10")).unwrap();
    let labels = dataset.labels();
    let sub = dataset.subset(vec![3, 1, 3]).unwrap();
    assert_eq!(sub.len(), 3);
    assert_eq!(sub.labels(), vec![labels[3], labels[1], labels[3]]);
    assert_eq!(sub.get(0).unwrap(), dataset.get(3).unwrap());
    assert!(dataset.subset(vec![10]).is_err());
    assert!(dataset.get(10).is_err());
    let nested = sub.subset(vec![1]).unwrap();
    assert_eq!(nested.get(0).unwrap(), dataset.get(1).unwrap());
}

#[test]
fn dataset_names_parse() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
    }
    assert!("imagenet".parse::<DatasetKind>().is_err());
}

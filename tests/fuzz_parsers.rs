//! Property-based fuzzing of every parser that reads a user's file (issue 8): IDX (raw and
//! gzip), CIFAR binary, PyTorch `.pth` (zip and legacy pickle), safetensors, a run's
//! `config.json`, `metrics.csv` and `esm_epochs.csv`, and image files (PNG, JPEG).
//!
//! Each parser gets, from a small valid fixture: the file truncated at every offset, random
//! byte mutations and splices (proptest, deterministic seed), random bytes, and hand-made
//! headers announcing huge sizes. Every case must return (a value or a typed error)
//! without panicking, and the largest single allocation it makes must stay within what
//! the file justifies: a few times its size for plain formats, deflate's 1,032:1 limit for
//! compressed ones, plus 1 MiB of working room. A counting global allocator measures it
//! (the parsers run on the test's thread; allocations of other threads are not counted).
//! The number of cases per parser is printed (`cargo test --test fuzz_parsers -- --nocapture`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use burn::tensor::Device;
use common::{TinyBnNet, fixture};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use xbn::checkpoint::{Family, LoadOptions, Naming, load_weights, save_weights};
use xbn::data::cifar::{self, CifarKind};
use xbn::data::{DatasetKind, MAX_IMAGE_SIDE, decode_image, idx};
use xbn::norm::NormConfig;
use xbn::train::{CSV_HEADER, TrainConfig, read_esm_epochs, read_metrics, write_esm_epochs};

// ---------------------------------------------------------------------------------------
// The largest allocation of the current thread.

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; `note` only updates a
// thread-local counter (no allocation, no panic).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`; returns the largest single allocation it made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(|l| l.get())
}

// ---------------------------------------------------------------------------------------
// The harness.

const MIB: usize = 1 << 20;

/// How much memory a file of `len` bytes may make its parser allocate at once:
/// `1 MiB + per_byte · len + extra`.
#[derive(Clone, Copy)]
struct Bound {
    per_byte: usize,
    extra: usize,
}

/// Plain formats: 4× the file.
const PLAIN: Bound = Bound {
    per_byte: 4,
    extra: 0,
};
/// Compressed formats: deflate's expansion limit.
const COMPRESSED: Bound = Bound {
    per_byte: 1100,
    extra: 0,
};

impl Bound {
    fn bytes(self, len: usize) -> usize {
        MIB + self.per_byte * len + self.extra
    }
}

/// Parses one input (written to a file first by parsers that read files).
type Parse<'a> = Box<dyn Fn(&[u8]) + 'a>;

/// A parser under test.
struct Target<'a> {
    name: &'static str,
    fixture: Vec<u8>,
    bound: Bound,
    run: Parse<'a>,
}

/// Proptest cases of each kind (mutations, splices, random bytes) per parser.
const CASES: u32 = 128;

fn runner() -> TestRunner {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

impl Target<'_> {
    fn case(&self, bytes: &[u8]) {
        let largest = largest_allocation(|| (self.run)(bytes));
        let bound = self.bound.bytes(bytes.len());
        assert!(
            largest <= bound,
            "{}: a {}-byte input made an allocation of {largest} bytes (bound {bound})",
            self.name,
            bytes.len()
        );
    }

    /// Runs every kind of case plus `extra` hand-made inputs; returns the number of cases.
    fn fuzz(&self, extra: &[Vec<u8>]) -> usize {
        let len = self.fixture.len();
        assert!(len > 0, "{}: empty fixture", self.name);
        // The valid file itself must parse (checked by the caller's closure if it wants).
        self.case(&self.fixture);
        let mut cases = 1;
        for cut in 0..len {
            self.case(&self.fixture[..cut]);
        }
        cases += len;
        for bytes in extra {
            self.case(bytes);
        }
        cases += extra.len();

        let mutations = vec((0..len, any::<u8>()), 1..16);
        let outcome = runner().run(&mutations, |edits| {
            let mut bytes = self.fixture.clone();
            for (i, b) in edits {
                bytes[i] = b;
            }
            self.case(&bytes);
            Ok(())
        });
        outcome.unwrap_or_else(|e| panic!("{}: mutation {e}", self.name));
        let splices = (0..len, vec(any::<u8>(), 0..64), 0..len);
        let outcome = runner().run(&splices, |(cut, insert, resume)| {
            let mut bytes = self.fixture[..cut].to_vec();
            bytes.extend(insert);
            bytes.extend_from_slice(&self.fixture[resume..]);
            self.case(&bytes);
            Ok(())
        });
        outcome.unwrap_or_else(|e| panic!("{}: splice {e}", self.name));
        let random = vec(any::<u8>(), 0..2 * len);
        let outcome = runner().run(&random, |bytes| {
            self.case(&bytes);
            Ok(())
        });
        outcome.unwrap_or_else(|e| panic!("{}: random bytes {e}", self.name));
        cases += 3 * CASES as usize;
        println!(
            "{}: {cases} cases, no panic, allocations within bounds",
            self.name
        );
        cases
    }
}

/// Writes `bytes` to `path` (the parsers under test read files).
fn put(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b
}

// ---------------------------------------------------------------------------------------
// The parsers.

#[test]
fn idx_files_raw_and_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("file");
    let images = |bytes: &[u8]| {
        put(&path, bytes);
        let _ = idx::read_images(&path);
    };
    let labels = |bytes: &[u8]| {
        put(&path, bytes);
        let _ = idx::read_labels(&path);
    };
    let huge = vec![
        idx_header(0x0803, &[u32::MAX, u32::MAX, u32::MAX]),
        idx_header(0x0803, &[1 << 30, 28, 28]),
        idx_header(0x08ff, &[]),
        gzip(&idx_header(0x0803, &[u32::MAX, 28, 28])),
        // A gzip bomb: 64 MiB of zeros behind a header announcing 10 images.
        gzip(&[idx_header(0x0803, &[10, 28, 28]), vec![0; 64 * MIB]].concat()),
    ];
    let raw = Target {
        name: "IDX images (raw)",
        fixture: read("fashion-mnist/t10k-images-idx3-ubyte"),
        bound: PLAIN,
        run: Box::new(images),
    };
    assert!(idx::read_images(&fixture("fashion-mnist/t10k-images-idx3-ubyte")).is_ok());
    raw.fuzz(&huge);
    let gz = Target {
        name: "IDX images (gzip)",
        fixture: read("fashion-mnist/train-images-idx3-ubyte.gz"),
        bound: COMPRESSED,
        run: Box::new(images),
    };
    gz.fuzz(&huge);
    let gz_labels = Target {
        name: "IDX labels (gzip)",
        fixture: read("fashion-mnist/train-labels-idx1-ubyte.gz"),
        bound: COMPRESSED,
        run: Box::new(labels),
    };
    gz_labels.fuzz(&[gzip(&[idx_header(0x0801, &[3]), vec![1; 8 * MIB]].concat())]);

    // The bomb is refused after inflating only what its header announces.
    let bomb = &huge[4];
    put(&path, bomb);
    let largest = largest_allocation(|| {
        let e = idx::read_images(&path).unwrap_err();
        assert!(e.to_string().contains("after the"), "{e}");
    });
    assert!(largest < 2 * MIB, "{largest}");
}

#[test]
fn cifar_binary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("file.bin");
    for (name, rel, kind) in [
        (
            "CIFAR-10 binary",
            "cifar10/test_batch.bin",
            CifarKind::Cifar10,
        ),
        ("CIFAR-100 binary", "cifar100/test.bin", CifarKind::Cifar100),
    ] {
        assert!(cifar::read_file(&fixture(rel), kind).is_ok());
        let target = Target {
            name,
            fixture: read(rel),
            bound: PLAIN,
            run: Box::new(|bytes: &[u8]| {
                put(&path, bytes);
                let _ = cifar::read_file(&path, kind);
            }),
        };
        target.fuzz(&[vec![255; kind.record_bytes()]]);
    }
}

fn weights_target<'a>(
    name: &'static str,
    fixture: Vec<u8>,
    bound: Bound,
    path: &'a Path,
) -> Target<'a> {
    let device = Device::flex();
    let options = LoadOptions {
        family: Some(Family::Generic),
        ..LoadOptions::default()
    };
    Target {
        name,
        fixture,
        bound,
        run: Box::new(move |bytes: &[u8]| {
            put(path, bytes);
            let model = TinyBnNet::new(&NormConfig::batch(), &device);
            let _ = load_weights(model, path, &options);
        }),
    }
}

#[test]
fn safetensors_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let valid = tmp.path().join("valid.safetensors");
    let model = TinyBnNet::new(&NormConfig::batch(), &Device::flex());
    save_weights(&model, &valid, Family::Generic, Naming::Authors).unwrap();
    let bytes = std::fs::read(&valid).unwrap();
    let path = tmp.path().join("case.safetensors");
    let header_len =
        |n: u64, json: &str| [n.to_le_bytes().to_vec(), json.as_bytes().to_vec()].concat();
    let huge = vec![
        header_len(u64::MAX, "{"),
        header_len(1 << 40, "{}"),
        header_len(
            60,
            r#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}"#,
        ),
    ];
    let options = LoadOptions {
        family: Some(Family::Generic),
        ..LoadOptions::default()
    };
    let fresh = TinyBnNet::new(&NormConfig::batch(), &Device::flex());
    assert!(load_weights(fresh, &valid, &options).is_ok());
    weights_target("safetensors", bytes, PLAIN, &path).fuzz(&huge);
}

#[test]
fn pytorch_zip_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("case.pth");
    // A zip member may be deflated.
    weights_target(
        "PyTorch .pth (zip)",
        read("esm/tiny_bn_net.pth"),
        COMPRESSED,
        &path,
    )
    .fuzz(&[]);
}

#[test]
fn pytorch_legacy_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("case.pth");
    let options = LoadOptions {
        family: Some(Family::Generic),
        ..LoadOptions::default()
    };
    let fresh = TinyBnNet::new(&NormConfig::batch(), &Device::flex());
    let legacy = fixture("fuzz/tiny_bn_net_legacy.pth");
    assert!(load_weights(fresh, &legacy, &options).is_ok());
    weights_target(
        "PyTorch .pth (legacy pickle)",
        read("fuzz/tiny_bn_net_legacy.pth"),
        PLAIN,
        &path,
    )
    .fuzz(&[]);
}

#[test]
fn run_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("file");
    let config = TrainConfig::new(
        DatasetKind::FashionMnist,
        "resnet20-xbn-p2".parse().unwrap(),
    );
    let json = serde_json::to_string_pretty(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<TrainConfig>(&json).unwrap(),
        config,
        "the fixture parses"
    );
    Target {
        name: "config.json",
        fixture: json.into_bytes(),
        bound: PLAIN,
        run: Box::new(|bytes: &[u8]| {
            put(&path, bytes);
            if let Ok(c) = TrainConfig::load(&path) {
                let _ = c.validate();
                let _ = c.network();
            }
        }),
    }
    .fuzz(&[br#"{"batch_size": 18446744073709551615}"#.to_vec()]);

    let metrics = format!(
        "{CSV_HEADER}\n1,0.1,0.52,81.5,0.44,84.1,190.2,315.5,9.1\n2,0.05,0.36,87.0,0.33,88.9,191.0,314.1,9.0\n"
    );
    assert_eq!(
        {
            put(&path, metrics.as_bytes());
            read_metrics(&path).unwrap().len()
        },
        2
    );
    Target {
        name: "metrics.csv",
        fixture: metrics.into_bytes(),
        bound: PLAIN,
        run: Box::new(|bytes: &[u8]| {
            put(&path, bytes);
            let _ = read_metrics(&path);
        }),
    }
    .fuzz(&[]);

    let esm_csv = tmp.path().join("esm.csv");
    let rows = (1..=2)
        .flat_map(|epoch| {
            (1..=3).map(move |depth| xbn::train::EsmEpochRow {
                epoch,
                depth,
                path: format!("layer{depth}.0.bn1"),
                channels: 16 * depth,
                esm_mean: 0.1 * depth as f64,
                esm_var: 0.3 * depth as f64,
                esm_mean_per_sqrt_c: 0.02,
                esm_var_per_sqrt_c: 0.07,
            })
        })
        .collect::<Vec<_>>();
    write_esm_epochs(&esm_csv, &rows).unwrap();
    assert_eq!(read_esm_epochs(&esm_csv).unwrap(), rows);
    Target {
        name: "esm_epochs.csv",
        fixture: std::fs::read(&esm_csv).unwrap(),
        bound: PLAIN,
        run: Box::new(|bytes: &[u8]| {
            put(&path, bytes);
            let _ = read_esm_epochs(&path);
        }),
    }
    .fuzz(&[]);
}

/// CRC-32 (IEEE) of PNG chunks, so a hand-made header reaches the decoder's size checks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and IHDR announcing a `width × height` RGBA image, and nothing else.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png
}

#[test]
fn image_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("image");
    for rel in [
        "fuzz/pattern_32x24.png",
        "fuzz/pattern_32x24.jpg",
        "images/pattern_300x200.png",
    ] {
        let img = decode_image(&fixture(rel)).unwrap();
        assert!(img.width() >= 32 && img.height() >= 24, "{rel}");
    }
    let huge = vec![
        png_header(16_000, 16_000),
        png_header(u32::MAX, u32::MAX),
        png_header(16_000, 1),
    ];
    for (name, rel) in [
        ("PNG image", "fuzz/pattern_32x24.png"),
        ("JPEG image", "fuzz/pattern_32x24.jpg"),
    ] {
        Target {
            name,
            fixture: read(rel),
            // Resizing to 64 pixels on the shorter side makes a picture of at most
            // 64 × MAX_IMAGE_SIDE RGB pixels, whatever the file.
            bound: Bound {
                extra: 64 * MAX_IMAGE_SIDE as usize * 3,
                ..COMPRESSED
            },
            run: Box::new(|bytes: &[u8]| {
                put(&path, bytes);
                let _ = decode_image(&path);
                let _ = xbn::data::preprocess(&path, 64, 56);
            }),
        }
        .fuzz(&huge);
    }
}

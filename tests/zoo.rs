//! The model zoo against the authors' PyTorch code (tools/gen_zoo.py): parameter counts,
//! norm layers and MACs of every registered model, logits parity after importing PyTorch
//! checkpoints, export round trips, checkpoint errors.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::{Golden, fixture, to_vec};
use serde_json::Value;
use xbn::blocks::{BlockKind, NormPlan, Placement, ShortcutKind};
use xbn::checkpoint::{
    CheckpointError, Family, LoadOptions, Naming, load_weights, save_safetensors, save_weights,
};
use xbn::models::{
    MobileNetV2Config, ModelName, Network, NetworkConfig, ResNetConfig, ShuffleNetV2Config, Stem,
    count_parameters,
};
use xbn::norm::{Norm, NormConfig};

fn zoo_counts() -> BTreeMap<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture("zoo_counts.json")).unwrap()).unwrap()
}

#[test]
fn every_registered_model_matches_the_authors_code() {
    let counts = zoo_counts();
    let device = Device::flex();
    let registered = ModelName::registered();
    let imagenet: Vec<ModelName> = registered
        .into_iter()
        .filter(|m| m.arch.input_size() == [224, 224])
        .collect();
    assert_eq!(
        imagenet.len(),
        counts.len(),
        "every PyTorch reference is registered"
    );
    for name in imagenet {
        let expected = &counts[&name.to_string()];
        let model = name.config().unwrap().init(&device).unwrap();
        let tag = name.to_string();
        assert_eq!(
            count_parameters(&model) as u64,
            expected["params"].as_u64().unwrap(),
            "{tag} params"
        );
        let norms = model.norm_layers();
        let bn = norms.iter().filter(|n| matches!(n, Norm::Batch(_))).count();
        let mut gn: Vec<String> = norms
            .iter()
            .filter_map(|n| match n {
                Norm::Group(g) => Some(format!("{}/{}", g.num_groups, g.num_channels)),
                _ => None,
            })
            .collect();
        let mut expected_gn: Vec<String> = expected["gn_groups_channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        gn.sort();
        expected_gn.sort();
        assert_eq!(
            bn as u64,
            expected["bn_layers"].as_u64().unwrap(),
            "{tag} BN layers"
        );
        assert_eq!(gn, expected_gn, "{tag} GN layers");
        assert_eq!(
            model.macs([224, 224]),
            expected["macs_224"].as_u64().unwrap(),
            "{tag} MACs"
        );
    }
}

#[test]
fn paper_reference_counts() {
    // paper.md §6.1 (the authors' code run at 1000 classes).
    let counts = zoo_counts();
    for (name, params, bn, gn, macs) in [
        ("resnet18", 11_689_512u64, 20u64, 0u64, 1_814_073_344u64),
        ("resnet50", 25_557_032, 53, 0, 4_089_184_256),
        ("resnet50-xbn-p2", 25_557_032, 36, 17, 4_089_184_256),
        ("resnet50-xbn-p3", 25_557_032, 36, 17, 4_089_184_256),
        ("resnet101-xbn-p2", 44_549_160, 70, 34, 7_801_405_440),
        ("resnext50-32x4d", 25_028_904, 53, 0, 4_230_479_872),
        ("resnext50-32x4d-xbn", 25_028_904, 36, 17, 4_230_479_872),
        ("resnext50-32x4d-gn", 25_028_904, 0, 53, 4_230_479_872),
        ("resnext101-32x8d-xbn", 88_791_336, 70, 34, 16_414_015_488),
        ("mobilenet-v2", 3_504_872, 52, 0, 300_774_272),
        ("mobilenet-v2-xbn", 3_504_872, 35, 17, 300_774_272),
        ("shufflenet-v2-0.5x-xbn", 1_365_792, 37, 19, 40_476_448),
        ("shufflenet-v2-1.0x", 2_278_760, 56, 0, 145_814_296),
        ("shufflenet-v2-1.0x-xbn", 2_278_760, 37, 19, 145_814_296),
        ("shufflenet-v2-1.5x-xbn", 3_506_720, 37, 19, 298_970_656),
    ] {
        let c = &counts[name];
        assert_eq!(c["params"].as_u64().unwrap(), params, "{name}");
        assert_eq!(c["bn_layers"].as_u64().unwrap(), bn, "{name}");
        assert_eq!(c["gn_layers"].as_u64().unwrap(), gn, "{name}");
        assert_eq!(c["macs_224"].as_u64().unwrap(), macs, "{name}");
    }
    // ShuffleNetV2 1.0×: the 24-channel projection gets 24 groups (29 clamped).
    let gn = counts["shufflenet-v2-1.0x-xbn"]["gn_groups_channels"]
        .as_array()
        .unwrap();
    assert!(gn.iter().any(|v| v == "24/24"));
}

/// The xbn configuration described by a fixture's JSON.
fn config_of(case: &Value) -> NetworkConfig {
    let placement: Placement = case["placement"].as_str().unwrap().parse().unwrap();
    let bfn: NormConfig = case["bfn"].as_str().unwrap().parse().unwrap();
    let classes = case["num_classes"].as_u64().unwrap() as usize;
    let depthwise = if placement == Placement::Bn {
        NormConfig::batch()
    } else {
        bfn.clone()
    };
    let usizes = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    match case["family"].as_str().unwrap() {
        "resnet" => NetworkConfig::ResNet(ResNetConfig {
            block: if case["block"] == "basic" {
                BlockKind::Basic
            } else {
                BlockKind::Bottleneck
            },
            layers: usizes(&case["layers"]),
            planes: usizes(&case["planes"]),
            stem_channels: case["stem_channels"].as_u64().unwrap() as usize,
            stem: Stem::ImageNet,
            shortcut: ShortcutKind::B,
            in_channels: 3,
            num_classes: classes,
            groups: case["groups"].as_u64().unwrap() as usize,
            width_per_group: case["width_per_group"].as_u64().unwrap() as usize,
            norm_plan: NormPlan::new(placement, bfn),
        }),
        "mobilenet_v2" => NetworkConfig::MobileNetV2(
            MobileNetV2Config::xbn(depthwise)
                .with_width_mult(case["width_mult"].as_f64().unwrap())
                .with_num_classes(classes),
        ),
        "shufflenet_v2" => NetworkConfig::ShuffleNetV2(
            ShuffleNetV2Config::xbn(case["size"].as_str().unwrap().parse().unwrap(), depthwise)
                .with_num_classes(classes),
        ),
        other => panic!("{other}"),
    }
}

fn family_of(config: &NetworkConfig) -> Family {
    match config {
        NetworkConfig::ResNet(_) => Family::ResNet,
        NetworkConfig::MobileNetV2(_) => Family::MobileNetV2,
        NetworkConfig::ShuffleNetV2(_) => Family::ShuffleNetV2,
    }
}

fn weights_file(case: &str) -> PathBuf {
    ["pth", "safetensors"]
        .iter()
        .map(|ext| fixture(&format!("zoo/{case}.{ext}")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no weights for {case}"))
}

/// Loads the PyTorch weights of `case`, runs the fixed input in inference mode and
/// returns the largest difference to PyTorch's logits divided by `max(1, max |logit|)`
/// (an absolute error for logits of order 1, a relative one for large logits: the
/// ShuffleNetV2 baseline's reach 2e4 after three training steps).
fn parity(case: &str, device: &Device) -> f32 {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("zoo/{case}.json"))).unwrap(),
    )
    .unwrap();
    let config = config_of(&spec);
    let naming = match spec.get("naming").and_then(Value::as_str) {
        Some("torchvision") => Naming::Torchvision,
        _ => Naming::Auto,
    };
    let options = LoadOptions {
        family: Some(family_of(&config)),
        naming,
        allow_partial: false,
    };
    let (model, report) =
        load_weights(config.init(device).unwrap(), &weights_file(case), &options).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty());
    let io = Golden::load_path(&fixture(&format!("zoo/{case}.io.safetensors")));
    let logits = to_vec(model.forward(io.tensor::<4>("input", device)));
    let expected = io.values("logits");
    let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
    logits
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0f32, f32::max)
}

#[test]
fn imported_pytorch_weights_give_pytorch_logits() {
    for case in [
        "resnet_bottleneck_bn",
        "resnet_bottleneck_xbn_p2",
        "resnet_basic_xbn_p3",
        "resnext_bn",
        "resnext_xbn_p2",
        "resnext_gn",
        "mobilenet_v2_xbn",
        "mobilenet_v2_torchvision_names",
        "shufflenet_v2_bn",
        "shufflenet_v2_xbn",
    ] {
        for (name, device) in common::devices() {
            let err = parity(case, &device);
            println!("{case}/{name}: max |logits - PyTorch| / max(1, |logits|) = {err:.2e}");
            assert!(err <= 1e-4, "{case}/{name}: {err}");
        }
    }
}

fn round_trip(config: &NetworkConfig, dir: &Path) {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let model = config.init(&ad).unwrap();
    // One training forward: non-trivial running statistics.
    let _ = model.forward(Tensor::random(
        [4, 3, 32, 32],
        Distribution::Normal(0.5, 2.0),
        &ad,
    ));
    let model = model.valid();
    let path = dir.join("m.safetensors");
    save_safetensors(&model, &path).unwrap();
    let loaded = xbn::checkpoint::load_safetensors(config.init(&device).unwrap(), &path).unwrap();
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
    assert_eq!(to_vec(model.forward(x.clone())), to_vec(loaded.forward(x)));
    // PyTorch conventions in the file: num_batches_tracked is an int64 scalar.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in st.tensors() {
        if name.ends_with("num_batches_tracked") {
            assert_eq!(view.dtype(), safetensors::Dtype::I64);
            assert!(view.shape().is_empty());
            assert_eq!(i64::from_le_bytes(view.data().try_into().unwrap()), 1);
        } else {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        }
    }
}

#[test]
fn export_round_trips_for_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for case in ["resnext_xbn_p2", "mobilenet_v2_xbn", "shufflenet_v2_xbn"] {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("zoo/{case}.json"))).unwrap(),
        )
        .unwrap();
        round_trip(&config_of(&spec), tmp.path());
    }
    // Exported names are PyTorch's: the authors' ShuffleNetV2 keys.
    let config = config_of(
        &serde_json::from_str(
            &std::fs::read_to_string(fixture("zoo/shufflenet_v2_xbn.json")).unwrap(),
        )
        .unwrap(),
    );
    let model = config.init(&Device::flex()).unwrap();
    let path = tmp.path().join("s.safetensors");
    save_weights(&model, &path, Family::ShuffleNetV2, Naming::Authors).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = st.names();
    for key in [
        "first_conv.0.weight",
        "features.0.branch_proj.1.weight",
        "features.3.branch_main.4.weight",
        "conv_last.1.running_var",
        "classifier.0.weight",
    ] {
        assert!(names.contains(&key), "{key}");
    }
}

#[test]
fn checkpoint_errors_are_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("zoo/resnext_bn.json")).unwrap())
            .unwrap();
    let config = config_of(&spec);
    let options = LoadOptions {
        family: Some(Family::ResNet),
        ..LoadOptions::default()
    };
    let model = || config.init(&device).unwrap();

    let e = load_weights(model(), &tmp.path().join("none.pth"), &options).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");

    let junk = tmp.path().join("junk.pth");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    let e = load_weights(model(), &junk, &options).unwrap_err();
    assert!(matches!(e, CheckpointError::Store { .. }), "{e}");

    // A truncated PyTorch zip.
    let bytes = std::fs::read(fixture("zoo/resnext_bn.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(load_weights(model(), &cut, &options).is_err());

    // The XBN checkpoint into the BN model: GN layers have no running statistics.
    let e = load_weights(model(), &fixture("zoo/resnext_xbn_p2.pth"), &options).unwrap_err();
    let CheckpointError::Mismatch { missing, .. } = &e else {
        panic!("{e}")
    };
    assert!(missing.iter().any(|m| m.ends_with("running_mean")), "{e}");
    // ... which partial loading accepts, reporting what it skipped.
    let partial = LoadOptions {
        allow_partial: true,
        ..options.clone()
    };
    let (_, report) = load_weights(model(), &fixture("zoo/resnext_xbn_p2.pth"), &partial).unwrap();
    assert!(!report.missing.is_empty() && report.loaded > 0);

    // Another architecture: shape errors even with partial loading.
    let e = load_weights(model(), &fixture("zoo/resnet_bottleneck_bn.pth"), &partial).unwrap_err();
    let CheckpointError::Mismatch { errors, .. } = &e else {
        panic!("{e}")
    };
    assert!(!errors.is_empty(), "{e}");
}

#[test]
fn registry_names() {
    for (name, arch_input) in [
        ("resnet50", [224, 224]),
        ("resnet50-xbn-p2", [224, 224]),
        ("resnext50-32x4d-xbn", [224, 224]),
        ("resnext101-32x8d-gn", [224, 224]),
        ("mobilenet-v2-xbn", [224, 224]),
        ("shufflenet-v2-1.0x-xbn", [224, 224]),
        ("resnet20-xbn-p3", [32, 32]),
        ("resnet18-cifar", [32, 32]),
    ] {
        let m: ModelName = name.parse().unwrap();
        assert_eq!(m.to_string(), name);
        assert_eq!(m.arch.input_size(), arch_input);
    }
    assert_eq!(
        "resnet50-xbn".parse::<ModelName>().unwrap().to_string(),
        "resnet50-xbn-p2"
    );
    assert_eq!(
        "resnet50-bn".parse::<ModelName>().unwrap().to_string(),
        "resnet50"
    );
    for bad in [
        "mobilenet-v2-xbn-p3",
        "resnext50-32x4d-xbn-p1",
        "shufflenet-v2-3.0x",
        "vgg16",
    ] {
        assert!(bad.parse::<ModelName>().is_err(), "{bad}");
    }
    // The XBN variant of MobileNetV2 keeps BN on the stem and last conv, GN(16) after
    // each depthwise conv (17 layers).
    let m = "mobilenet-v2-xbn"
        .parse::<ModelName>()
        .unwrap()
        .config()
        .unwrap()
        .init(&Device::flex())
        .unwrap();
    let Network::MobileNetV2(mv2) = &m else {
        panic!()
    };
    assert!(matches!(mv2.norm_layers()[0], Norm::Batch(_)));
    assert!(matches!(mv2.norm_layers().last().unwrap(), Norm::Batch(_)));
}

#[test]
fn image_preprocessing_matches_torchvision() {
    let png = fixture("images/pattern_300x200.png");
    let ours = xbn::data::preprocess(&png, 64, 56).unwrap();
    let reference = Golden::load_path(&fixture("images/pattern_300x200.torchvision.safetensors"));
    let expected = reference.values("pixels");
    assert_eq!(ours.len(), expected.len());
    let diffs: Vec<f32> = ours
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().fold(0f32, |m, &d| m.max(d));
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    println!("preprocess vs torchvision: max {max:.4}, mean {mean:.5} (normalised units)");
    // Both resample with an antialiased triangle filter; the rest is rounding of bytes
    // (one byte is 1/255/0.225 ≈ 0.017 here).
    assert!(max < 0.04 && mean < 0.01, "max {max}, mean {mean}");

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jpg");
    std::fs::write(&bad, b"not an image").unwrap();
    let e = xbn::data::preprocess(&bad, 256, 224).unwrap_err();
    assert!(e.to_string().contains("bad.jpg"), "{e}");
    assert!(xbn::data::preprocess(&png, 64, 65).is_err());
}

#[test]
fn predict_and_models_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let name: ModelName = "shufflenet-v2-0.5x-xbn".parse().unwrap();
    let model = name
        .config()
        .unwrap()
        .with_num_classes(3)
        .init(&device)
        .unwrap();
    let weights = tmp.path().join("w.safetensors");
    save_safetensors(&model, &weights).unwrap();
    let labels = tmp.path().join("labels.txt");
    std::fs::write(&labels, "cat\ndog\nbird\n").unwrap();
    let png = fixture("images/pattern_300x200.png");
    let xbn = env!("CARGO_BIN_EXE_xbn");
    let out = std::process::Command::new(xbn)
        .args([
            "predict",
            "--model",
            "shufflenet-v2-0.5x-xbn",
            "--num-classes",
            "3",
            "--top-k",
            "3",
        ])
        .arg("--checkpoint")
        .arg(&weights)
        .arg("--labels")
        .arg(&labels)
        .arg(&png)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same probabilities as the library computes.
    let x = xbn::data::image_batch(&[png.as_path()], 256, 224, &device).unwrap();
    let probs = to_vec(burn::tensor::activation::softmax(
        model.valid().forward(x),
        1,
    ));
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let mut sum = 0.0;
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let class: usize = fields[2].parse().unwrap();
        let p: f32 = fields[5].parse().unwrap();
        assert!((p - probs[class]).abs() < 1e-3, "{line} vs {probs:?}");
        assert_eq!(fields[6], ["cat", "dog", "bird"][class]);
        sum += p;
    }
    assert!((sum - 1.0).abs() < 1e-3);

    // A label file of the wrong length is a clear error.
    std::fs::write(&labels, "cat\ndog\n").unwrap();
    let out = std::process::Command::new(xbn)
        .args([
            "predict",
            "--model",
            "shufflenet-v2-0.5x-xbn",
            "--num-classes",
            "3",
        ])
        .arg("--checkpoint")
        .arg(&weights)
        .arg("--labels")
        .arg(&labels)
        .arg(&png)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 class names for a model of 3 classes")
    );

    let out = std::process::Command::new(xbn)
        .args(["models", "--names"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert_eq!(names.lines().count(), ModelName::registered().len());
    assert!(names.lines().any(|l| l == "resnext50-32x4d-xbn"));
}

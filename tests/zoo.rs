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
    let _rng = common::rng_lock();
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
    // paper.md §6.1: the authors' code run with each script's norm configuration,
    // 1000 classes, MACs of convolutions and linear layers at 224×224.
    let counts = zoo_counts();
    #[rustfmt::skip]
    let table: [(&str, u64, u64, u64, u64, u64); 25] = [
        ("resnet18", 11_689_512, 20, 0, 122, 1_814_073_344),
        ("resnet18-xbn-p1", 11_689_512, 11, 9, 95, 1_814_073_344),
        ("resnet18-xbn-p2", 11_689_512, 11, 9, 95, 1_814_073_344),
        ("resnet18-xbn-p3", 11_689_512, 11, 9, 95, 1_814_073_344),
        ("resnet34", 21_797_672, 36, 0, 218, 3_663_761_408),
        ("resnet50", 25_557_032, 53, 0, 320, 4_089_184_256),
        ("resnet50-xbn-p1", 25_557_032, 36, 17, 269, 4_089_184_256),
        ("resnet50-xbn-p2", 25_557_032, 36, 17, 269, 4_089_184_256),
        ("resnet50-xbn-p3", 25_557_032, 36, 17, 269, 4_089_184_256),
        ("resnet101", 44_549_160, 104, 0, 626, 7_801_405_440),
        ("resnet101-xbn-p2", 44_549_160, 70, 34, 524, 7_801_405_440),
        ("resnext50-32x4d", 25_028_904, 53, 0, 320, 4_230_479_872),
        ("resnext50-32x4d-xbn", 25_028_904, 36, 17, 269, 4_230_479_872),
        ("resnext50-32x4d-gn", 25_028_904, 0, 53, 161, 4_230_479_872),
        ("resnext101-32x8d", 88_791_336, 104, 0, 626, 16_414_015_488),
        ("resnext101-32x8d-xbn", 88_791_336, 70, 34, 524, 16_414_015_488),
        ("resnext101-32x8d-gn", 88_791_336, 0, 104, 314, 16_414_015_488),
        ("mobilenet-v2", 3_504_872, 52, 0, 314, 300_774_272),
        ("mobilenet-v2-xbn", 3_504_872, 35, 17, 263, 300_774_272),
        ("shufflenet-v2-0.5x", 1_365_792, 56, 0, 337, 40_476_448),
        ("shufflenet-v2-0.5x-xbn", 1_365_792, 37, 19, 280, 40_476_448),
        ("shufflenet-v2-1.0x", 2_278_760, 56, 0, 337, 145_814_296),
        ("shufflenet-v2-1.0x-xbn", 2_278_760, 37, 19, 280, 145_814_296),
        ("shufflenet-v2-1.5x", 3_506_720, 56, 0, 337, 298_970_656),
        ("shufflenet-v2-1.5x-xbn", 3_506_720, 37, 19, 280, 298_970_656),
    ];
    for (name, params, bn, gn, keys, macs) in table {
        let c = &counts[name];
        assert_eq!(c["params"].as_u64().unwrap(), params, "{name}");
        assert_eq!(c["bn_layers"].as_u64().unwrap(), bn, "{name}");
        assert_eq!(c["gn_layers"].as_u64().unwrap(), gn, "{name}");
        assert_eq!(c["state_dict_keys"].as_u64().unwrap(), keys, "{name}");
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
/// returns the largest absolute difference to PyTorch's logits (all of order one).
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
    assert!(
        expected.iter().all(|v| v.abs() < 10.0),
        "{case}: logits of order one expected"
    );
    // BatchNorm folded into the convolutions (inference): the same logits.
    let batch_norms = model
        .norm_layers()
        .iter()
        .filter(|n| !n.is_batch_free())
        .count();
    let (folded, n) = model.valid().fold_batch_norms();
    assert_eq!(n, batch_norms, "{case}: every BatchNorm is folded");
    assert!(folded.norm_layers().iter().all(|n| n.is_batch_free()));
    let folded_logits = to_vec(folded.forward(io.tensor::<4>("input", device)));
    let scale = logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    let fold_error = logits
        .iter()
        .zip(&folded_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale;
    println!(
        "{case}: {n} BatchNorms folded, max |folded - unfolded| / max|logits| = {fold_error:.2e}"
    );
    assert!(
        fold_error <= 1e-5,
        "{case}: folding changed the logits by {fold_error}"
    );
    let max_diff = |a: &[f32]| {
        a.iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    };
    max_diff(&logits).max(max_diff(&folded_logits))
}

#[test]
fn imported_pytorch_weights_give_pytorch_logits() {
    let _rng = common::rng_lock();
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
        // The authors' checkpoint dictionary ({"model", "optimizer", "epoch", ...}) without
        // num_batches_tracked (PyTorch < 0.4.1).
        "resnet_checkpoint_dict",
    ] {
        for (name, device) in common::devices() {
            let err = parity(case, &device);
            println!("{case}/{name}: max |logits - PyTorch| = {err:.2e} (unfolded and folded)");
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
    let _rng = common::rng_lock();
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
    let _rng = common::rng_lock();
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
    let e = load_weights(model(), &cut, &options).unwrap_err();
    assert!(matches!(e, CheckpointError::Store { .. }), "{e}");

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
    let _rng = common::rng_lock();
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
    const XBN_0_5X: &str = "shufflenet-v2-0.5x-xbn";
    // Every test of this file that initialises a model holds the lock, so the seeded
    // draws below are the same on every run.
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    device.seed(11);
    let name: ModelName = XBN_0_5X.parse().unwrap();
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
    let labels_arg = labels.to_str().unwrap();
    // `xbn predict --model MODEL EXTRA… --checkpoint CHECKPOINT <png>`.
    let predict = |model: &str, checkpoint: &Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xbn"))
            .args(["predict", "--model", model])
            .args(extra)
            .arg("--checkpoint")
            .arg(checkpoint)
            .arg(&png)
            .output()
            .unwrap()
    };
    let out = predict(
        XBN_0_5X,
        &weights,
        &["--num-classes", "3", "--top-k", "3", "--labels", labels_arg],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same probabilities as the library computes.
    let x = xbn::data::image_batch(&[png.as_path()], 256, 224, &device).unwrap();
    let probs = to_vec(burn::tensor::activation::softmax(
        model.valid().forward(x.clone()),
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

    // `--bfn` rebuilds the model with another batch-free norm: weights trained with
    // LayerNorm in the XBN blocks give the library's LayerNorm probabilities.
    let ln_model = name
        .config_with_bfn(xbn::norm::NormConfig::layer())
        .unwrap()
        .with_num_classes(3)
        .init(&device)
        .unwrap();
    let logits = to_vec(ln_model.valid().forward(x.clone()));
    let spread = logits.iter().cloned().fold(f32::MIN, f32::max)
        - logits.iter().cloned().fold(f32::MAX, f32::min);
    // A fresh model gives almost exactly 1/3 to each class, which would not tell
    // the norms apart: scale the (bias-free) classifier so the LayerNorm logits
    // spread over 2 units.
    let ln_model = match ln_model {
        xbn::models::Network::ShuffleNetV2(mut net) => {
            assert!(net.classifier.bias.is_none());
            net.classifier.weight = net.classifier.weight.map(|w| w * (2.0 / spread));
            xbn::models::Network::ShuffleNetV2(net)
        }
        _ => unreachable!("a ShuffleNetV2 name"),
    };
    let ln_weights = tmp.path().join("ln.safetensors");
    save_safetensors(&ln_model, &ln_weights).unwrap();
    // The probability of each class as `xbn predict --top-k 3` prints it.
    let cli_probs = |extra: &[&str]| {
        let args = [&["--num-classes", "3", "--top-k", "3"], extra].concat();
        let out = predict(XBN_0_5X, &ln_weights, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut probs = [f32::NAN; 3];
        for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            probs[fields[2].parse::<usize>().unwrap()] = fields[5].parse().unwrap();
        }
        assert!(
            probs.iter().all(|p| p.is_finite()),
            "a class is missing: {probs:?}"
        );
        probs
    };
    let ln_probs = to_vec(burn::tensor::activation::softmax(
        ln_model.valid().forward(x),
        1,
    ));
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    let cli_ln = cli_probs(&["--bfn", "ln"]);
    assert!(
        max_diff(&cli_ln, &ln_probs) < 1e-3,
        "{cli_ln:?} vs {ln_probs:?}"
    );
    // Reading the same weights with the registry's default norm (GroupNorm) gives other
    // probabilities: the flag really changes the model.
    let cli_gn = cli_probs(&[]);
    assert!(
        max_diff(&cli_gn, &cli_ln) > 1e-2,
        "GroupNorm {cli_gn:?} vs LayerNorm {cli_ln:?}"
    );

    // `--bfn` is refused for a model without batch-free norms, and must be batch-free.
    for (model, bfn, message) in [
        ("shufflenet-v2-0.5x", "ln", "has no batch-free norm"),
        (XBN_0_5X, "bn", "must be a batch-free norm"),
    ] {
        let out = predict(model, &ln_weights, &["--bfn", bfn]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }

    // A label file of the wrong length is a clear error.
    std::fs::write(&labels, "cat\ndog\n").unwrap();
    let out = predict(
        XBN_0_5X,
        &weights,
        &["--num-classes", "3", "--labels", labels_arg],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 class names for a model of 3 classes")
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xbn"))
        .args(["models", "--names"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert_eq!(names.lines().count(), ModelName::registered().len());
    assert!(names.lines().any(|l| l == "resnext50-32x4d-xbn"));
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn family_initialisations_follow_the_authors() {
    let _rng = common::rng_lock();
    // paper.md §6.1 invariant 7 (ShuffleNetV2 1.0x, Megvii init) and §4.4 (MobileNetV2).
    let device = Device::flex();
    device.seed(5);
    let name: ModelName = "shufflenet-v2-1.0x".parse().unwrap();
    let Network::ShuffleNetV2(s) = name.config().unwrap().init(&device).unwrap() else {
        panic!()
    };
    let first = std_of(&to_vec(s.first_conv.weight.val()));
    assert!((first - 0.01).abs() < 0.001, "first conv std {first}");
    let dw = std_of(&to_vec(s.features[1].main_dw.weight.val()));
    assert!((dw - 1.0).abs() < 0.05, "depthwise std {dw}");
    // 58×24×1×1 pointwise conv of the first unit: std 1/24.
    let pw = std_of(&to_vec(s.features[0].main_pw.weight.val()));
    assert!((pw - 1.0 / 24.0).abs() < 0.004, "pointwise std {pw}");
    let Norm::Batch(bn) = &s.first_norm else {
        panic!()
    };
    assert!(
        to_vec(bn.bias.as_ref().unwrap().val())
            .iter()
            .all(|&b| (b - 1e-4).abs() < 1e-9)
    );
    assert!(s.classifier.bias.is_none());

    let name: ModelName = "mobilenet-v2-xbn".parse().unwrap();
    let Network::MobileNetV2(m) = name.config().unwrap().init(&device).unwrap() else {
        panic!()
    };
    let fc = std_of(&to_vec(m.classifier.weight.val()));
    assert!((fc - 0.01).abs() < 0.0005, "classifier std {fc}");
    assert!(
        to_vec(m.classifier.bias.as_ref().unwrap().val())
            .iter()
            .all(|&b| b == 0.0)
    );
    // A depthwise conv of the 144-wide block: N(0, sqrt(2 / (3·3·144))).
    let xbn::models::MobileNetLayer::InvertedResidual(b) = &m.features[3] else {
        panic!()
    };
    let dw = std_of(&to_vec(b.depthwise.weight.val()));
    let expected = (2.0f64 / (9.0 * 144.0)).sqrt();
    assert!((dw - expected).abs() < 0.1 * expected, "{dw} vs {expected}");
    let Norm::Group(gn) = &b.depthwise_norm else {
        panic!()
    };
    assert_eq!((gn.num_groups, gn.num_channels), (16, 144));
}

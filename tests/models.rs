//! Architectures: parameter counts against PyTorch, norm placements, backends, errors.

mod common;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::{devices, fixture, to_vec};
use xbn::blocks::{BlockKind, NormPlan, Placement, ResidualBlock, ShortcutKind};
use xbn::checkpoint::{CheckpointError, load_safetensors, save_safetensors};
use xbn::models::{
    Arch, ModelError, ModelName, NetworkConfig, ResNet, ResNetConfig, count_parameters,
    tensor_entries,
};
use xbn::norm::{Norm, NormConfig, NormError};

fn pytorch_counts() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(fixture("param_counts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn xbn_plan(p: Placement) -> NormPlan {
    NormPlan::new(p, NormConfig::group(64))
}

#[test]
fn parameter_counts_match_pytorch() {
    let counts = pytorch_counts();
    let device = Device::flex();
    // The reference values.
    assert_eq!(counts["resnet20-A"], 269_722);
    assert_eq!(counts["resnet20-B"], 272_474);
    assert_eq!(counts["resnet18-cifar"], 11_173_962);
    let mut checked = 0;
    for depth in [20, 32, 44, 56, 110] {
        for (sc, kind) in [("A", ShortcutKind::A), ("B", ShortcutKind::B)] {
            let expected = counts[&format!("resnet{depth}-{sc}")];
            for placement in Placement::ALL {
                let model = ResNetConfig::cifar(depth)
                    .unwrap()
                    .with_shortcut(kind)
                    .with_norm_plan(xbn_plan(placement))
                    .init(&device)
                    .unwrap();
                assert_eq!(
                    count_parameters(&model),
                    expected,
                    "resnet{depth}-{sc} {placement}"
                );
                checked += 1;
            }
        }
    }
    let mnist = ResNetConfig::cifar(20)
        .unwrap()
        .with_in_channels(1)
        .init(&device)
        .unwrap();
    assert_eq!(count_parameters(&mnist), counts["resnet20-A-mnist"]);
    for (name, config) in [
        ("resnet18-cifar", ResNetConfig::resnet18_cifar()),
        ("resnet34-cifar", ResNetConfig::resnet34_cifar()),
        ("resnet50-cifar", ResNetConfig::resnet50_cifar()),
    ] {
        for placement in [Placement::Bn, Placement::XbnP2] {
            let model = config
                .clone()
                .with_norm_plan(xbn_plan(placement))
                .init(&device)
                .unwrap();
            assert_eq!(count_parameters(&model), counts[name], "{name} {placement}");
            checked += 1;
        }
    }
    assert_eq!(checked, 56);
}

fn norm_kinds(model: &ResNet) -> (usize, usize) {
    let entries = tensor_entries(model);
    let bn = entries
        .iter()
        .filter(|e| e.path.ends_with("running_mean"))
        .count();
    // GroupNorm layers are the norms with a weight but no running statistics.
    let gn = entries
        .iter()
        .filter(|e| e.path.ends_with(".weight") && e.shape.len() == 1)
        .filter(|e| {
            let prefix = e.path.trim_end_matches(".weight");
            !entries
                .iter()
                .any(|o| o.path == format!("{prefix}.running_mean"))
        })
        .count();
    (bn, gn)
}

#[test]
fn xbn_placements_put_the_batch_free_norm_where_the_authors_do() {
    let device = Device::flex();
    let cifar = |p| {
        ResNetConfig::cifar(20)
            .unwrap()
            .with_norm_plan(xbn_plan(p))
            .init(&device)
            .unwrap()
    };
    // ResNet-20: stem + 9 blocks × 2 norms; option A has no downsample norm.
    assert_eq!(norm_kinds(&cifar(Placement::Bn)), (19, 0));
    // One GN per block plus the stem (paper.md §6.1 invariant 4).
    assert_eq!(norm_kinds(&cifar(Placement::XbnP2)), (9, 10));
    assert_eq!(norm_kinds(&cifar(Placement::All)), (0, 19));

    let model = cifar(Placement::XbnP2);
    assert!(matches!(model.bn1, Norm::Group(_)));
    for block in model.blocks() {
        let ResidualBlock::Basic(b) = block else {
            panic!()
        };
        assert!(matches!(b.bn1, Norm::Group(_)) && matches!(b.bn2, Norm::Batch(_)));
    }
    let model = cifar(Placement::XbnP3);
    for block in model.blocks() {
        let ResidualBlock::Basic(b) = block else {
            panic!()
        };
        assert!(matches!(b.bn1, Norm::Batch(_)) && matches!(b.bn2, Norm::Group(_)));
    }

    // Bottleneck (ResNet-50 with a CIFAR stem): P1/P2/P3 move the GN among bn1/bn2/bn3;
    // the downsample norm stays BN; 16 blocks + stem = 17 GN (paper.md §6.1).
    for (placement, slot) in [
        (Placement::XbnP1, 0),
        (Placement::XbnP2, 1),
        (Placement::XbnP3, 2),
    ] {
        let model = ResNetConfig::resnet50_cifar()
            .with_norm_plan(xbn_plan(placement))
            .init(&device)
            .unwrap();
        assert_eq!(norm_kinds(&model), (36, 17), "{placement}");
        for block in model.blocks() {
            let ResidualBlock::Bottleneck(b) = block else {
                panic!()
            };
            let norms = [&b.bn1, &b.bn2, &b.bn3];
            for (i, n) in norms.iter().enumerate() {
                assert_eq!(n.is_batch_free(), i == slot, "{placement} slot {i}");
            }
            if let Some(xbn::blocks::Shortcut::Projection(p)) = &b.downsample {
                assert!(matches!(p.bn, Norm::Batch(_)));
            }
        }
    }
    // ResNet-50 GN groups: 64 requested, clamped to the width (64 in layer1).
    let model = ResNetConfig::resnet50_cifar()
        .with_norm_plan(xbn_plan(Placement::XbnP2))
        .init(&device)
        .unwrap();
    let ResidualBlock::Bottleneck(b) = &model.layer1[0] else {
        panic!()
    };
    let Norm::Group(gn) = &b.bn2 else { panic!() };
    assert_eq!((gn.num_groups, gn.num_channels), (64, 64));
}

#[test]
fn initialisation_follows_the_authors() {
    let device = Device::flex();
    device.seed(3);
    let model = ResNetConfig::resnet18_cifar().init(&device).unwrap();
    let std = |t: Tensor<4>| {
        let v = to_vec(t);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    // conv weights ~ N(0, sqrt(2 / (k·k·out))): layer4 3×3×512 → 0.02083.
    let ResidualBlock::Basic(b) = &model.layer4[1] else {
        panic!()
    };
    let s = std(b.conv2.weight.val());
    assert!((s - (2.0f64 / (9.0 * 512.0)).sqrt()).abs() < 0.0005, "{s}");
    let s = std(model.conv1.weight.val());
    assert!((s - (2.0f64 / (9.0 * 64.0)).sqrt()).abs() < 0.01, "{s}");
    // Norms start at γ = 1, β = 0, running_var = 1.
    let bn = model.bn1.as_batch_norm().unwrap();
    assert!(
        to_vec(bn.weight.as_ref().unwrap().val())
            .iter()
            .all(|&v| v == 1.0)
    );
    assert!(
        to_vec(bn.bias.as_ref().unwrap().val())
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        to_vec(bn.running_var.as_ref().unwrap().value())
            .iter()
            .all(|&v| v == 1.0)
    );
    // Linear as PyTorch: U(-1/sqrt(512), 1/sqrt(512)).
    let bound = 1.0 / 512f32.sqrt();
    let w = to_vec(model.fc.weight.val());
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
}

#[test]
fn same_weights_same_logits_on_every_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    let config = ResNetConfig::cifar(20)
        .unwrap()
        .with_shortcut(ShortcutKind::B)
        .with_norm_plan(xbn_plan(Placement::XbnP2));
    let flex = Device::flex();
    let reference = config.init(&flex).unwrap();
    save_safetensors(&reference, &path).unwrap();
    let x: Tensor<4> = Tensor::random([3, 3, 16, 16], Distribution::Normal(0.0, 1.0), &flex);
    let input = x.to_data();
    let expected = to_vec(reference.forward(x));
    let mut seen = 0;
    for (name, device) in devices() {
        let model = load_safetensors(config.init(&device).unwrap(), &path).unwrap();
        let out = to_vec(model.forward(Tensor::from_data(input.clone(), &device)));
        let worst = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{name}: {worst}");
        seen += 1;
    }
    assert_eq!(seen, compiled_backends());
}

/// 1 (flex) plus each optional backend compiled in.
fn compiled_backends() -> usize {
    1 + [
        cfg!(feature = "ndarray"),
        cfg!(feature = "wgpu"),
        cfg!(feature = "tch"),
        cfg!(feature = "cuda"),
    ]
    .iter()
    .filter(|&&on| on)
    .count()
}

/// A training step (forward, cross-entropy, backward, SGD) of ResNet-20 with option-A
/// shortcuts (the strided subsampling whose backward burn-tch could not do) and XBN-P2
/// gives the same loss and the same updated model on every compiled backend.
#[test]
fn a_training_step_is_the_same_on_every_backend() {
    use burn::optim::GradientsParams;
    use burn::tensor::{Int, TensorData};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("init.safetensors");
    let config = ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(xbn_plan(Placement::XbnP2));
    let flex = Device::flex();
    save_safetensors(&config.init(&flex).unwrap(), &path).unwrap();
    let x: Tensor<4> = Tensor::random([4, 3, 16, 16], Distribution::Normal(0.5, 1.5), &flex);
    let input = x.to_data();
    let labels = TensorData::new(vec![1i64, 7, 3, 3], [4]);
    let mut results: Vec<(&str, Vec<f32>, Vec<f32>)> = Vec::new();
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let model = load_safetensors(config.init(&ad).unwrap(), &path).unwrap();
        let targets = Tensor::<1, Int>::from_data(labels.clone(), &ad);
        let out = xbn::train::classification_output(
            &model,
            Tensor::from_data(input.clone(), &ad),
            targets,
        );
        let loss = to_vec(out.loss.clone());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        let model = xbn::train::sgd(0.9, 5e-4).step(0.1, model, grads).valid();
        let after = to_vec(model.forward(Tensor::from_data(input.clone(), &device)));
        assert!(
            loss[0].is_finite() && after.iter().all(|v| v.is_finite()),
            "{name}"
        );
        results.push((name, loss, after));
    }
    let (_, loss0, after0) = &results[0];
    for (name, loss, after) in &results[1..] {
        assert!(
            (loss[0] - loss0[0]).abs() < 1e-4 * loss0[0].abs().max(1.0),
            "{name} loss"
        );
        let scale = after0.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = after
            .iter()
            .zip(after0)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3 * scale, "{name}: {worst} (scale {scale})");
        println!(
            "{name}: loss {:.6} (flex {:.6}), outputs after the step within {worst:.2e}",
            loss[0], loss0[0]
        );
    }
    assert_eq!(results.len(), compiled_backends());
}

#[test]
fn safetensors_round_trip_keeps_outputs_and_running_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let config = ResNetConfig::resnet18_cifar().with_norm_plan(xbn_plan(Placement::XbnP2));
    let model = config.init(&ad).unwrap();
    // One training forward moves the running statistics away from (0, 1).
    let _ = model.forward(Tensor::random(
        [4, 3, 8, 8],
        Distribution::Normal(1.0, 2.0),
        &ad,
    ));
    let model = model.valid();
    save_safetensors(&model, &path).unwrap();
    let loaded = load_safetensors(config.init(&device).unwrap(), &path).unwrap();
    let bn = |m: &ResNet| {
        let ResidualBlock::Basic(b) = &m.layer1[0] else {
            panic!()
        };
        let bn = b.bn2.as_batch_norm().unwrap();
        (
            to_vec(bn.running_mean.as_ref().unwrap().value()),
            to_vec(bn.running_var.as_ref().unwrap().value()),
            to_vec(bn.num_batches_tracked.as_ref().unwrap().value()),
        )
    };
    let (mean, var, nbt) = bn(&loaded);
    assert_eq!((mean.clone(), var.clone(), nbt.clone()), bn(&model));
    assert!(mean.iter().any(|&m| m != 0.0) && var.iter().any(|&v| v != 1.0));
    assert_eq!(nbt, [1.0]);
    let x: Tensor<4> = Tensor::random([2, 3, 8, 8], Distribution::Default, &device);
    assert_eq!(to_vec(model.forward(x.clone())), to_vec(loaded.forward(x)));

    // PyTorch naming: torchvision keys, classifier weight [out, in].
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = st.names();
    for key in [
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer1.0.bn1.weight",
        "fc.weight",
    ] {
        assert!(names.iter().any(|n| n == &key), "{key} not in {names:?}");
    }
    assert_eq!(st.tensor("fc.weight").unwrap().shape(), [10, 512]);
}

#[test]
fn checkpoint_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let r20 = || ResNetConfig::cifar(20).unwrap().init(&device).unwrap();
    let e = load_safetensors(r20(), &tmp.path().join("missing.safetensors")).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");

    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    assert!(matches!(
        load_safetensors(r20(), &garbage).unwrap_err(),
        CheckpointError::Store { .. }
    ));

    // ResNet-32 weights into a ResNet-20: unused tensors. XBN weights into BN: missing stats.
    let r32 = tmp.path().join("r32.safetensors");
    save_safetensors(
        &ResNetConfig::cifar(32).unwrap().init(&device).unwrap(),
        &r32,
    )
    .unwrap();
    let e = load_safetensors(r20(), &r32).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { unused, .. } if !unused.is_empty()),
        "{e}"
    );
    let xbn = tmp.path().join("xbn.safetensors");
    let xbn_model = ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(xbn_plan(Placement::XbnP2))
        .init(&device)
        .unwrap();
    save_safetensors(&xbn_model, &xbn).unwrap();
    let e = load_safetensors(r20(), &xbn).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { missing, .. } if missing.iter().any(|m| m.contains("running_mean"))),
        "{e}"
    );
    // A model for 1-channel input does not take RGB weights: a shape error.
    let e = load_safetensors(
        ResNetConfig::cifar(20)
            .unwrap()
            .with_in_channels(1)
            .init(&device)
            .unwrap(),
        &tmp.path().join("r32.safetensors"),
    );
    assert!(e.is_err());
}

#[test]
fn model_errors() {
    let device = Device::flex();
    assert!(matches!(
        ResNetConfig::cifar(21),
        Err(ModelError::InvalidDepth(21))
    ));
    assert!(matches!(
        ResNetConfig::cifar(2),
        Err(ModelError::InvalidDepth(2))
    ));
    let model = ResNetConfig::cifar(20).unwrap().init(&device).unwrap();
    let e = model
        .try_forward(Tensor::zeros([2, 1, 28, 28], &device))
        .unwrap_err();
    assert!(
        matches!(e, ModelError::InputChannels { expected: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("in_channels"));

    // A GN group count that does not divide a layer's channels: typed error, no panic.
    let e = ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(NormPlan::new(Placement::XbnP2, NormConfig::group(12)))
        .init(&device)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::Norm(NormError::GroupsDoNotDivide {
                groups: 12,
                channels: 16,
                ..
            })
        ),
        "{e}"
    );

    let mut config = ResNetConfig::resnet18_cifar();
    config.groups = 32;
    assert!(matches!(
        config.init(&device),
        Err(ModelError::InvalidConfig(_))
    ));
    let mut config = ResNetConfig::cifar(20).unwrap();
    config.layers = vec![1, 1];
    assert!(matches!(
        config.init(&device),
        Err(ModelError::InvalidConfig(_))
    ));
    let mut config = ResNetConfig::cifar(20).unwrap();
    config.num_classes = 0;
    assert!(matches!(
        config.init(&device),
        Err(ModelError::InvalidConfig(_))
    ));

    // Option A cannot drop channels.
    let mut config = ResNetConfig::cifar(20).unwrap();
    config.planes = vec![16, 8, 64];
    let e = config.init(&device).unwrap_err();
    assert!(
        matches!(e, ModelError::InvalidConfig(_)) && e.to_string().contains("option B"),
        "{e}"
    );

    let e = "resnet21".parse::<ModelName>().unwrap_err();
    assert!(e.to_string().contains("resnet20"), "{e}");
    for name in ModelName::registered() {
        assert_eq!(name.to_string().parse::<ModelName>().unwrap(), name);
    }
    // Any CIFAR depth 6n + 2 round-trips; an invalid one is an error, not a panic.
    assert_eq!("resnet8".parse::<Arch>().unwrap(), Arch::CifarResNet(8));
    let bad = ModelName::new(Arch::CifarResNet(21), Placement::Bn);
    assert!(matches!(bad.config(), Err(ModelError::InvalidDepth(21))));
    let name: ModelName = "resnet50-cifar".parse().unwrap();
    let NetworkConfig::ResNet(r50) = name.config().unwrap() else {
        panic!()
    };
    assert_eq!(r50.block, BlockKind::Bottleneck);
}

#[test]
fn forward_shapes() {
    let device = Device::flex();
    for (config, hw) in [
        (ResNetConfig::cifar(20).unwrap().with_in_channels(1), 28),
        (ResNetConfig::resnet18_cifar().with_num_classes(100), 32),
        (
            ResNetConfig::resnet50_cifar().with_stem(xbn::models::Stem::ImageNet),
            64,
        ),
    ] {
        let c = config.in_channels;
        let k = config.num_classes;
        let model = config.init(&device).unwrap();
        let out = model.forward(Tensor::random(
            [2, c, hw, hw],
            Distribution::Default,
            &device,
        ));
        assert_eq!(out.dims(), [2, k]);
    }
}

#[test]
fn option_a_shortcut_subsamples_and_pads_with_zeros() {
    use xbn::blocks::ZeroPad;
    let device = Device::flex();
    // x[n, c, h, w] = 100c + 10h + w on a [1, 2, 4, 4] input, 2 → 6 channels, stride 2.
    let values: Vec<f32> = (0..2)
        .flat_map(|c| (0..4).flat_map(move |h| (0..4).map(move |w| (100 * c + 10 * h + w) as f32)))
        .collect();
    let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [1, 2, 4, 4]), &device);
    let pad = ZeroPad {
        stride: 2,
        pad_front: 2,
        pad_back: 2,
    };
    let y = pad.forward(x);
    assert_eq!(y.dims(), [1, 6, 2, 2]);
    let y = to_vec(y);
    // Channels 0, 1 and 4, 5 are zero; 2 and 3 hold x[:, :, ::2, ::2].
    assert!(y[..8].iter().chain(&y[16..]).all(|&v| v == 0.0));
    assert_eq!(
        &y[8..16],
        &[0.0, 2.0, 20.0, 22.0, 100.0, 102.0, 120.0, 122.0]
    );
}

#[test]
fn grouped_convolutions_use_the_full_fan_out() {
    // He init with n = k·k·out_channels, not divided by groups (Burn's KaimingNormal is).
    let device = Device::flex();
    device.seed(11);
    let conv = xbn::blocks::conv::conv(256, 256, 3, 1, 32, &device);
    let v = to_vec(conv.weight.val());
    let std = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let expected = (2.0f64 / (9.0 * 256.0)).sqrt();
    assert!(
        (std - expected).abs() < 0.02 * expected,
        "{std} vs {expected}"
    );
}

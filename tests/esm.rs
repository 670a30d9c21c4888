//! Estimation shift magnitude: against PyTorch (tools/gen_esm.py), invariants, and a
//! user-defined model with no ESM-specific code.

mod common;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use common::{Golden, fixture, to_vec};
use serde_json::Value;
use xbn::checkpoint::{Family, LoadOptions, load_weights};
use xbn::esm::{EsmError, batch_norm_states, measure, recalibrate, set_running_stats};
use xbn::norm::{Norm, NormConfig};

/// A model written as a user would: Burn layers plus norms from xbn's factory. It has no
/// ESM-specific code. Mirrors `TinyBnNet` of tools/gen_esm.py.
#[derive(Module, Debug)]
struct TinyBnNet {
    conv1: Conv2d,
    bn1: Norm,
    conv2: Conv2d,
    bn2: Norm,
    fc1: Linear,
    bn3: Norm,
    fc2: Linear,
}

impl TinyBnNet {
    fn new(norm: &NormConfig, device: &Device) -> Self {
        let conv = |i, o, s| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        Self {
            conv1: conv(3, 8, 1),
            bn1: norm.init(8, device).unwrap(),
            conv2: conv(8, 16, 2),
            bn2: norm.init(16, device).unwrap(),
            fc1: LinearConfig::new(16, 12).init(device),
            bn3: norm.init(12, device).unwrap(),
            fc2: LinearConfig::new(12, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        let x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        let x = relu(self.bn3.forward(self.fc1.forward(x)));
        self.fc2.forward(x)
    }
}

fn pytorch_model(device: &Device) -> TinyBnNet {
    let options = LoadOptions {
        family: Some(Family::Generic),
        ..LoadOptions::default()
    };
    load_weights(
        TinyBnNet::new(&NormConfig::batch(), device),
        &fixture("esm/tiny_bn_net.pth"),
        &options,
    )
    .unwrap()
    .0
}

fn batches(images: &Tensor<4>, size: usize) -> Vec<Tensor<4>> {
    let n = images.dims()[0];
    (0..n)
        .step_by(size)
        .map(|s| images.clone().narrow(0, s, size.min(n - s)))
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn esm_matches_pytorch_forward_hooks() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("esm/tiny_bn_net.esm.json")).unwrap(),
    )
    .unwrap();
    let data = Golden::load_path(&fixture("esm/tiny_bn_net.data.safetensors"));
    for (name, device) in common::devices() {
        let model = pytorch_model(&device);
        let images = data.tensor::<4>("images", &device);
        let report = measure(&model, batches(&images, 16), |m, x| m.forward(x)).unwrap();
        assert_eq!(report.layers.len(), 3);
        assert_eq!(report.values_per_channel, 100.0 * 64.0);
        for (ours, theirs) in report
            .layers
            .iter()
            .zip(expected["layers"].as_array().unwrap())
        {
            assert_eq!(ours.path, theirs["path"].as_str().unwrap());
            assert_eq!(ours.depth as u64, theirs["depth"].as_u64().unwrap());
            let (m, v) = (
                theirs["esm_mean"].as_f64().unwrap(),
                theirs["esm_var"].as_f64().unwrap(),
            );
            println!(
                "{name}/{}: esm_mean {:.6} (rel. err {:.1e}), esm_var {:.6} (rel. err {:.1e})",
                ours.path,
                ours.esm_mean,
                rel(ours.esm_mean, m),
                ours.esm_var,
                rel(ours.esm_var, v)
            );
            assert!(rel(ours.esm_mean, m) < 1e-5, "{}", ours.path);
            assert!(rel(ours.esm_var, v) < 1e-5, "{}", ours.path);
            for (key, ours) in [
                ("expected_mean", &ours.expected_mean),
                ("expected_var", &ours.expected_var),
            ] {
                for (a, b) in ours.iter().zip(theirs[key].as_array().unwrap()) {
                    let b = b.as_f64().unwrap();
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "{key}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn esm_does_not_depend_on_the_batch_size_and_leaves_the_model_alone() {
    let device = Device::flex();
    let model = pytorch_model(&device);
    let data = Golden::load_path(&fixture("esm/tiny_bn_net.data.safetensors"));
    let images = data.tensor::<4>("images", &device);
    let before: Vec<_> = batch_norm_states(&model)
        .into_iter()
        .map(|s| (s.running_mean, s.running_var))
        .collect();
    let params_before = to_vec(model.conv1.weight.val());
    let a = measure(&model, batches(&images, 100), |m, x| m.forward(x)).unwrap();
    let b = measure(&model, batches(&images, 7), |m, x| m.forward(x)).unwrap();
    for (x, y) in a.layers.iter().zip(&b.layers) {
        assert!(
            rel(x.esm_mean, y.esm_mean) < 1e-6 && rel(x.esm_var, y.esm_var) < 1e-6,
            "{}",
            x.path
        );
    }
    let after: Vec<_> = batch_norm_states(&model)
        .into_iter()
        .map(|s| (s.running_mean, s.running_var))
        .collect();
    assert_eq!(before, after);
    assert_eq!(params_before, to_vec(model.conv1.weight.val()));

    // Measuring a model on the autodiff device (as during training) does not touch it
    // either: the pass runs on an inference copy.
    let ad = device.clone().autodiff();
    let training = pytorch_model(&ad);
    let c = measure(&training, batches(&images, 25), |m, x| m.forward(x)).unwrap();
    assert!(rel(c.layers[2].esm_var, a.layers[2].esm_var) < 1e-6);
    let after: Vec<_> = batch_norm_states(&training.valid())
        .into_iter()
        .map(|s| (s.running_mean, s.running_var))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn expected_running_statistics_give_zero_esm() {
    let device = Device::flex();
    let model = pytorch_model(&device);
    let images = Golden::load_path(&fixture("esm/tiny_bn_net.data.safetensors"))
        .tensor::<4>("images", &device);
    let data = batches(&images, 32);
    let before = measure(&model, data.clone(), |m, x| m.forward(x)).unwrap();
    // The first BN's input does not depend on any BN: setting its estimates to the expected
    // statistics zeroes its ESM (paper.md §6.1 invariant 11) ...
    let first = set_running_stats(&model, &before.layers[..1]).unwrap();
    let after = measure(&first, data.clone(), |m, x| m.forward(x)).unwrap();
    assert!(
        after.layers[0].esm_mean < 1e-5 && after.layers[0].esm_var < 1e-5,
        "{:?}",
        after.layers[0]
    );
    // ... but a deeper BN's expected statistics move with the corrected layers upstream:
    // setting all layers at once from one measurement leaves the deeper ones shifted.
    let all = set_running_stats(&model, &before.layers).unwrap();
    let after = measure(&all, data.clone(), |m, x| m.forward(x)).unwrap();
    assert!(after.layers[0].esm_mean < 1e-5);
    assert!(
        after.layers[2].esm_mean > 1e-3,
        "{}",
        after.layers[2].esm_mean
    );
    // Recalibrating layer by layer zeroes every layer.
    let repaired = recalibrate(model, &data, |m, x| m.forward(x)).unwrap();
    let after = measure(&repaired, data, |m, x| m.forward(x)).unwrap();
    for l in &after.layers {
        assert!(
            l.esm_mean < 1e-5 && l.esm_var < 1e-4,
            "{}: {} {}",
            l.path,
            l.esm_mean,
            l.esm_var
        );
    }
    assert!(before.layers.iter().all(|l| l.esm_mean > 0.1));

    // A report that does not fit the model is a typed error, not a panic.
    let mut wrong = before.layers[1].clone();
    wrong.expected_mean.pop();
    let channels = before.layers[1].channels;
    assert!(matches!(
        set_running_stats(&pytorch_model(&device), &[wrong.clone()]),
        Err(EsmError::ChannelMismatch { path, expected, got })
            if path == before.layers[1].path && expected == channels && got == channels - 1
    ));
    wrong.path = "no.such.bn".into();
    assert!(matches!(
        set_running_stats(&pytorch_model(&device), &[wrong]),
        Err(EsmError::UnknownLayer { path }) if path == "no.such.bn"
    ));
}

#[test]
fn a_user_model_gets_a_full_report() {
    // Fresh user model with xbn's factory, trained one step so the estimates move.
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let model = TinyBnNet::new(&NormConfig::batch(), &ad);
    let _ = model.forward(Tensor::random(
        [16, 3, 8, 8],
        Distribution::Normal(0.5, 1.0),
        &ad,
    ));
    let images = Tensor::<4>::random([40, 3, 8, 8], Distribution::Normal(0.0, 2.0), &device);
    let report = measure(&model, batches(&images, 10), |m, x| m.forward(x)).unwrap();
    let paths: Vec<&str> = report.layers.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["bn1", "bn2", "bn3"]);
    assert_eq!(
        report.layers.iter().map(|l| l.channels).collect::<Vec<_>>(),
        [8, 16, 12]
    );
    for l in &report.layers {
        assert!(l.esm_mean.is_finite() && l.esm_var > 0.0);
        assert!((l.esm_mean_per_sqrt_c - l.esm_mean / (l.channels as f64).sqrt()).abs() < 1e-12);
    }
    let tmp = tempfile::tempdir().unwrap();
    report.write_json(&tmp.path().join("esm.json")).unwrap();
    report.write_csv(&tmp.path().join("esm.csv")).unwrap();
    report
        .plot(&tmp.path().join("esm.png"), "user model")
        .unwrap();
    report
        .plot(&tmp.path().join("esm.svg"), "user model")
        .unwrap();
    let csv = std::fs::read_to_string(tmp.path().join("esm.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().nth(2).unwrap().starts_with("2,bn2,16,"));
    let png = std::fs::read(tmp.path().join("esm.png")).unwrap();
    assert_eq!(&png[..4], &[0x89, b'P', b'N', b'G']);
    let svg = std::fs::read_to_string(tmp.path().join("esm.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("BatchNorm depth"));
    assert!(report.table().contains("bn3"));

    // A model without BatchNorm has no estimation shift.
    let gn_model = TinyBnNet::new(&NormConfig::group(4), &device);
    let e = measure(&gn_model, batches(&images, 10), |m, x| m.forward(x)).unwrap_err();
    assert!(matches!(e, EsmError::NoBatchNorm));
    // No data: a typed error.
    let e = measure(&model, Vec::<Tensor<4>>::new(), |m, x| m.forward(x)).unwrap_err();
    assert!(matches!(e, EsmError::NotObserved));
}

#[test]
fn recalibration_leaves_the_original_and_its_clones_alone() {
    let device = Device::flex();
    let model = pytorch_model(&device);
    let clone = model.clone();
    let images = Golden::load_path(&fixture("esm/tiny_bn_net.data.safetensors"))
        .tensor::<4>("images", &device);
    let data = batches(&images, 50);
    let before: Vec<_> = batch_norm_states(&clone)
        .into_iter()
        .map(|s| s.running_mean)
        .collect();
    let repaired = recalibrate(model.clone(), &data, |m, x| m.forward(x)).unwrap();
    let after: Vec<_> = batch_norm_states(&clone)
        .into_iter()
        .map(|s| s.running_mean)
        .collect();
    assert_eq!(before, after, "a clone of the input changed");
    let original: Vec<_> = batch_norm_states(&model)
        .into_iter()
        .map(|s| s.running_mean)
        .collect();
    assert_eq!(before, original);
    let fixed: Vec<_> = batch_norm_states(&repaired)
        .into_iter()
        .map(|s| s.running_mean)
        .collect();
    assert_ne!(before, fixed);
}

#[test]
fn measurements_are_confined_to_their_thread_and_do_not_nest() {
    let device = Device::flex();
    let model = pytorch_model(&device);
    let images = Golden::load_path(&fixture("esm/tiny_bn_net.data.safetensors"))
        .tensor::<4>("images", &device);
    let data = batches(&images, 20);
    let alone = measure(&model, data.clone(), |m, x| m.forward(x)).unwrap();
    // Another thread runs the same layers (same running_mean ids) on other data meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (other_model, other_stop) = (model.clone(), stop.clone());
    let other = std::thread::spawn(move || {
        let d = Device::flex();
        let noise = Tensor::<4>::random([8, 3, 8, 8], Distribution::Normal(5.0, 3.0), &d);
        let mut runs = 0;
        while !other_stop.load(std::sync::atomic::Ordering::Relaxed) || runs < 3 {
            let _ = other_model.forward(noise.clone());
            runs += 1;
        }
        runs
    });
    let concurrent = measure(&model, data.clone(), |m, x| {
        std::thread::yield_now();
        m.forward(x)
    })
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(other.join().unwrap() >= 3);
    assert_eq!(alone, concurrent);

    // A measurement inside another one's forward function is refused.
    let mut inner = None;
    measure(&model, data.clone(), |m, x| {
        if inner.is_none() {
            inner = Some(measure(m, data.clone(), |m2, y| m2.forward(y)));
        }
        m.forward(x)
    })
    .unwrap();
    assert!(matches!(inner, Some(Err(EsmError::Nested))));
}

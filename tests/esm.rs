//! Estimation shift magnitude: against PyTorch (tools/gen_esm.py), invariants, and a
//! user-defined model with no ESM-specific code.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::{Golden, TinyBnNet, fixture, to_vec};
use serde_json::Value;
use xbn::checkpoint::{Family, LoadOptions, load_weights};
use xbn::esm::{EsmError, batch_norm_states, measure, recalibrate, set_running_stats};
use xbn::norm::NormConfig;

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

    assert!(report.untrained.is_empty(), "{:?}", report.untrained);
    assert!(!report.table().contains("never trained"));
    // The classic mistake: "training" with batches on a plain device leaves every
    // BatchNorm at its initial statistics; the report says so.
    let plain = TinyBnNet::new(&NormConfig::batch(), &device);
    let _ = plain.forward(Tensor::random(
        [16, 3, 8, 8],
        Distribution::Default,
        &device,
    ));
    let report = measure(&plain, batches(&images, 10), |m, x| m.forward(x)).unwrap();
    assert_eq!(report.untrained, ["bn1", "bn2", "bn3"]);
    assert!(report.table().contains("3 BatchNorm(s) never trained"));

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

/// Issue 8, item 4: after 5 SGD steps, every reader of the running statistics sees the
/// current values, whether the model is still in training mode or switched with `valid()`:
/// the safetensors export (and the model loaded back from it), `batch_norm_states` and
/// the inference logits all match PyTorch after the same 5 steps (tools/gen_train_steps.py).
#[test]
fn running_statistics_are_current_after_training_steps_in_both_modes() {
    use burn::optim::GradientsParams;
    use xbn::checkpoint::{Naming, save_weights};

    let _rng = common::rng_lock();
    let golden = Golden::load_path(&fixture("golden/bn_net_5_steps.data.safetensors"));
    let options = LoadOptions {
        family: Some(Family::Generic),
        ..LoadOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, device) in common::devices() {
        let ad = device.clone().autodiff();
        let (mut model, _) = load_weights(
            TinyBnNet::new(&NormConfig::batch(), &ad),
            &fixture("golden/bn_net_5_steps.init.safetensors"),
            &options,
        )
        .unwrap();
        let mut optim = xbn::train::sgd(0.9, 1e-4);
        for step in 0..5 {
            let x = golden.tensor::<4>(&format!("step{step}.input"), &ad);
            let y = golden
                .tensor::<1>(&format!("step{step}.targets"), &ad)
                .int();
            let loss = burn::nn::loss::CrossEntropyLossConfig::new()
                .init(&ad)
                .forward(model.forward(x), y);
            common::assert_close(
                &to_vec(loss.clone()),
                golden.values(&format!("step{step}.loss")),
                &format!("{name} loss of step {step}"),
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1, model, grads);
        }
        // The module readers, on the model still in training mode (before any `valid()`).
        for state in batch_norm_states(&model) {
            let expected = |stat: &str| -> Vec<f32> {
                golden
                    .values(&format!("after.{}.{stat}", state.path))
                    .to_vec()
            };
            let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
            common::assert_close(
                &f32s(&state.running_mean),
                &expected("running_mean"),
                &format!("{name} batch_norm_states {}", state.path),
            );
            common::assert_close(
                &f32s(&state.running_var),
                &expected("running_var"),
                &format!("{name} batch_norm_states {}", state.path),
            );
        }
        for (mode, path) in [
            ("training", "train.safetensors"),
            ("valid", "valid.safetensors"),
        ] {
            let path = dir.path().join(format!("{name}-{path}"));
            // `valid()` synchronises the running states it shares with `model`, so the
            // training-mode export must come first.
            match mode {
                "training" => save_weights(&model, &path, Family::Generic, Naming::Authors),
                _ => save_weights(&model.valid(), &path, Family::Generic, Naming::Authors),
            }
            .unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            for bn in ["bn1", "bn2", "bn3"] {
                let nbt = st.tensor(&format!("{bn}.num_batches_tracked")).unwrap();
                assert_eq!(
                    i64::from_le_bytes(nbt.data().try_into().unwrap()),
                    5,
                    "{name} {mode}: {bn}.num_batches_tracked"
                );
                for stat in ["running_mean", "running_var"] {
                    let key = format!("{bn}.{stat}");
                    let values: Vec<f32> = st
                        .tensor(&key)
                        .unwrap()
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    common::assert_close(
                        &values,
                        golden.values(&format!("after.{key}")),
                        &format!("{name} {mode} export: {key}"),
                    );
                }
            }
            // The exported file gives PyTorch's eval-mode logits.
            let (exported, _) = load_weights(
                TinyBnNet::new(&NormConfig::batch(), &device),
                &path,
                &options,
            )
            .unwrap();
            let x = golden.tensor::<4>("eval.input", &device);
            common::assert_close(
                &to_vec(exported.forward(x)),
                golden.values("eval.logits"),
                &format!("{name} {mode} export: eval logits"),
            );
        }
        let valid = model.valid();
        let x = golden.tensor::<4>("eval.input", &device);
        common::assert_close(
            &to_vec(valid.forward(x)),
            golden.values("eval.logits"),
            &format!("{name} valid(): eval logits"),
        );
    }
}

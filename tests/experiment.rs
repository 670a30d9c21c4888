//! The §4 experiment harness on a small synthetic MNIST-format dataset.

mod common;

use std::path::Path;

use xbn::data::{DataLocator, DatasetKind};
use xbn::experiment::{ExperimentConfig, MlpNorms, estimation_shift};

/// A 28×28 IDX test split of `n` images: class `k` images are bright in row band `k`.
fn synthetic_mnist(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut images = Vec::new();
    for v in [0x0803u32, n as u32, 28, 28] {
        images.extend(v.to_be_bytes());
    }
    let mut labels = Vec::new();
    for v in [0x0801u32, n as u32] {
        labels.extend(v.to_be_bytes());
    }
    let mut state = 7u32;
    for i in 0..n {
        let class = (i % 10) as u8;
        labels.push(class);
        for r in 0..28u32 {
            for _ in 0..28 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 24) as u8 / 4;
                let band = r / 3 == class as u32;
                images.push(if band { 200 + noise / 4 } else { noise });
            }
        }
    }
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels).unwrap();
}

#[test]
fn estimation_shift_experiment_writes_results_figures_and_summary() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    synthetic_mnist(&data, 300);
    let config = ExperimentConfig {
        datasets: vec![DatasetKind::Mnist],
        depth: 4,
        width: 32,
        gn_groups: 4,
        epochs: 3,
        epoch_samples: 300,
        batch_size: 32,
        lr: 0.05,
        sizes: vec![64],
        ..ExperimentConfig::default()
    };
    let locator = DataLocator {
        data_dir: Some(data),
        env_dir: None,
        system_dirs: vec![],
        cache_dir: None,
        download: false,
        mirror: None,
    };
    let out = tmp.path().join("out");
    let mut lines = Vec::new();
    let results = estimation_shift(&config, &locator, &out, |l| lines.push(l.to_string())).unwrap();
    // 2 settings (setting 1 and |S| = 64) × 3 MLP variants.
    assert_eq!(results.len(), 6);
    assert_eq!(lines.len(), 6);
    for r in &results {
        assert_eq!(r.epochs.len(), 3);
        assert_eq!(r.train_size, if r.setting == 1 { 300 } else { 64 });
        let last = r.epochs.last().unwrap();
        assert!(
            (0.0..=100.0).contains(&last.test_error) && (0.0..=100.0).contains(&last.train_error)
        );
        let paths: Vec<&str> = last.esm.iter().map(|e| e.path.as_str()).collect();
        match r.model {
            MlpNorms::Bn => assert_eq!(
                paths,
                [
                    "layers.0.norm",
                    "layers.1.norm",
                    "layers.2.norm",
                    "layers.3.norm"
                ]
            ),
            // GNBN: GroupNorm in the odd layers (1 and 3), BatchNorm in 2 and 4.
            MlpNorms::Gnbn => assert_eq!(paths, ["layers.1.norm", "layers.3.norm"]),
            MlpNorms::None => assert!(paths.is_empty()),
        }
        assert!(
            last.esm
                .iter()
                .all(|e| e.esm_mean.is_finite() && e.esm_var.is_finite())
        );
        assert!((0.0..=100.0).contains(&last.running_train_error));
    }
    // The separable synthetic classes are learnt.
    let bn1 = results
        .iter()
        .find(|r| r.setting == 1 && r.model == MlpNorms::Bn)
        .unwrap();
    assert!(
        bn1.epochs.last().unwrap().test_error < 20.0,
        "{:?}",
        bn1.epochs
    );

    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert_eq!(
        summary.lines().filter(|l| l.starts_with("| mnist")).count(),
        6
    );
    assert!(out.join("results.json").is_file());
    for f in [
        "fig2_setting1_bn_errors.png",
        "fig2_setting1_bn_esm_mean.svg",
        "fig3_setting2_bn_esm_per_layer.png",
        "fig4_setting1_gnbn_esm_var.png",
        "fig5_setting2_esm_bn_vs_gnbn.svg",
        "fig5_setting2_test_error.png",
        "s1-bn/metrics.csv",
        "s2-n64-gnbn/esm.csv",
    ] {
        assert!(out.join("mnist").join(f).is_file(), "{f}");
    }
    // Reproducible: the same seed gives the same numbers.
    let again = estimation_shift(&config, &locator, &tmp.path().join("again"), |_| {}).unwrap();
    assert_eq!(again, results);
}

#[test]
fn invalid_experiment_configs_are_refused() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let locator = DataLocator {
        data_dir: Some(tmp.path().to_path_buf()),
        env_dir: None,
        system_dirs: vec![],
        cache_dir: None,
        download: false,
        mirror: None,
    };
    for config in [
        ExperimentConfig {
            sizes: vec![1],
            ..ExperimentConfig::default()
        },
        ExperimentConfig {
            epoch_samples: 0,
            ..ExperimentConfig::default()
        },
        ExperimentConfig {
            gn_groups: 0,
            ..ExperimentConfig::default()
        },
        ExperimentConfig {
            batch_size: 1,
            ..ExperimentConfig::default()
        },
        ExperimentConfig {
            lr: 0.0,
            ..ExperimentConfig::default()
        },
    ] {
        let e = estimation_shift(&config, &locator, &tmp.path().join("out"), |_| {}).unwrap_err();
        assert!(e.to_string().contains("BatchNorm needs two samples"), "{e}");
    }
}

#[test]
fn mlp_initialisation_is_he_for_hidden_layers_and_pytorch_default_for_the_head() {
    let _rng = common::rng_lock();
    use burn::tensor::Device;
    use xbn::experiment::Mlp;
    let device = Device::flex();
    let mlp = Mlp::new(784, 3, 256, 10, MlpNorms::None, 16, &device).unwrap();
    let values = |t: burn::tensor::Tensor<2>| -> Vec<f64> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let std = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    // N(0, 2 / in_features): 200,704 and 65,536 samples, so the sample std is within 1 %.
    for (layer, fan_in) in mlp.layers.iter().zip([784usize, 256, 256]) {
        let w = values(layer.linear.weight.val());
        let expected = (2.0 / fan_in as f64).sqrt();
        assert!(
            (std(&w) / expected - 1.0).abs() < 0.01,
            "{} vs {expected}",
            std(&w)
        );
        let b = values(layer.linear.bias.as_ref().unwrap().val().unsqueeze());
        let bound = 1.0 / (fan_in as f64).sqrt();
        assert!(b.iter().all(|x| x.abs() <= bound));
    }
    // The classifier keeps PyTorch's U(-1/sqrt(256), 1/sqrt(256)).
    let head = values(mlp.head.weight.val());
    assert!(head.iter().all(|x| x.abs() <= 1.0 / 16.0));
    assert!((std(&head) - (1.0 / 16.0) / 3f64.sqrt()).abs() < 0.003);
}

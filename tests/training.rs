//! Training: schedules, optimizer semantics, an end-to-end run, errors, kill and resume.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::lr_scheduler::LrScheduler;
use burn::module::Module;
use burn::nn::{Initializer, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use common::{fixture, to_vec};
use xbn::blocks::Placement;
use xbn::data::{DataLocator, DatasetKind};
use xbn::device::BackendKind;
use xbn::models::{Arch, ModelName};
use xbn::norm::NormConfig;
use xbn::train::{
    CSV_HEADER, EpochLrScheduler, RunOptions, Schedule, TrainConfig, TrainError, evaluate_run,
    files, last_checkpoint, read_metrics, resume, sgd, train,
};

#[test]
fn schedules_match_pytorch() {
    // paper.md §6.1 invariant 10 / §5.1: the authors' step and cosine recipes.
    let step = Schedule::Step {
        step_size: 30,
        gamma: 0.1,
    };
    for (epoch, lr) in [
        (0, 0.1),
        (29, 0.1),
        (30, 0.01),
        (60, 0.001),
        (90, 0.0001),
        (99, 0.0001),
    ] {
        assert!((step.lr(0.1, epoch, 100) - lr).abs() < 1e-12, "{epoch}");
    }
    let cosine = Schedule::Cosine {
        t_max: Some(150),
        eta_min: 1e-5,
    };
    assert!((cosine.lr(0.1, 0, 150) - 0.1).abs() < 1e-12);
    assert!((cosine.lr(0.1, 75, 150) - 0.050005).abs() < 1e-9);
    assert!((cosine.lr(0.1, 149, 150) - 2.0965e-5).abs() < 1e-8);
    let multi = Schedule::MultiStep {
        milestones: vec![2, 4],
        gamma: 0.5,
    };
    let lrs: Vec<f64> = (0..6).map(|e| multi.lr(1.0, e, 6)).collect();
    assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    assert_eq!(Schedule::Constant.lr(0.3, 7, 10), 0.3);
    // Without t_max the cosine spans the run.
    let run_cosine = Schedule::Cosine {
        t_max: None,
        eta_min: 0.0,
    };
    assert!((run_cosine.lr(1.0, 1, 2) - 0.5).abs() < 1e-12);
}

#[test]
fn epoch_scheduler_steps_per_iteration_and_resumes() {
    let schedule = Schedule::MultiStep {
        milestones: vec![1],
        gamma: 0.1,
    };
    let mut s = EpochLrScheduler::new(1.0, schedule.clone(), 2, 3);
    let lrs: Vec<f64> = (0..4).map(|_| s.step()).collect();
    assert_eq!(lrs, [1.0, 1.0, 1.0, 0.1]);
    let record = s.to_record();
    let mut restored = EpochLrScheduler::new(1.0, schedule, 2, 3);
    restored.load_record(record);
    assert_eq!(restored.step(), 0.1);
}

#[test]
fn sgd_has_pytorch_semantics() {
    // One weight p = 1, loss = 2·p: gradient 2; lr 0.5, momentum 0.9, weight decay 0.1.
    // torch.optim.SGD: d = g + wd·p; v = d (first step), then v = m·v + d; p -= lr·v.
    let device = Device::flex().autodiff();
    let mut optim = sgd(0.9, 0.1);
    let mut model = LinearConfig::new(1, 1)
        .with_bias(false)
        .with_initializer(Initializer::Constant { value: 1.0 })
        .init(&device);
    let x = Tensor::<2>::ones([1, 1], &device);
    let mut values = vec![];
    for _ in 0..2 {
        let loss = model.forward(x.clone()).mul_scalar(2.0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.5, model, grads);
        values.push(to_vec(model.weight.val())[0]);
    }
    assert!((values[0] - (-0.05)).abs() < 1e-6, "{values:?}");
    // With Burn's default dampening 0.1 the second value would be -1.89275.
    assert!((values[1] - (-1.9925)).abs() < 1e-5, "{values:?}");
}

fn tiny_config(dataset: DatasetKind, placement: Placement) -> TrainConfig {
    let mut c = TrainConfig::new(dataset, ModelName::new(Arch::CifarResNet(20), placement))
        .with_bfn(NormConfig::group(64));
    c.epochs = 2;
    c.batch_size = 4;
    c.lr = 0.05;
    c
}

fn fixture_locator() -> DataLocator {
    DataLocator {
        data_dir: Some(fixture("")),
        env_dir: None,
        system_dirs: vec![],
        cache_dir: None,
        download: false,
        mirror: None,
    }
}

#[test]
fn end_to_end_run_writes_the_run_directory() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let options = RunOptions {
        run_dir: run_dir.clone(),
        locator: fixture_locator(),
    };
    let config = tiny_config(DatasetKind::Cifar10, Placement::XbnP2);
    let summary = train(&config, &options).unwrap();

    for f in [files::CONFIG, files::METRICS, files::MODEL, files::FINAL] {
        assert!(run_dir.join(f).is_file(), "{f}");
    }
    assert_eq!(
        TrainConfig::load(&run_dir.join(files::CONFIG)).unwrap(),
        config
    );
    let header = std::fs::read_to_string(run_dir.join(files::METRICS)).unwrap();
    assert_eq!(header.lines().next().unwrap(), CSV_HEADER);
    let rows = read_metrics(&run_dir.join(files::METRICS)).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);
    // Cosine over 2 epochs: 0.05 then 0.025.
    assert!(
        (rows[0].lr - 0.05).abs() < 1e-9 && (rows[1].lr - 0.025).abs() < 1e-9,
        "{rows:?}"
    );
    for r in &rows {
        assert!(r.train_loss.is_finite() && r.test_loss.is_finite());
        assert!((0.0..=100.0).contains(&r.test_accuracy));
        assert!(r.train_seconds > 0.0 && r.train_images_per_second > 0.0);
    }
    assert_eq!(summary.test.num_images, 2);
    assert_eq!(summary.resumed_from_epoch, None);
    // The final score equals the last epoch's test accuracy (both in inference mode).
    assert!((summary.test.accuracy - rows[1].test_accuracy).abs() < 1e-9);
    // `xbn eval` scores the saved weights the same.
    let again = evaluate_run(&run_dir, None, &fixture_locator(), 2).unwrap();
    assert_eq!(again.correct, summary.test.correct);
    assert!((again.loss - summary.test.loss).abs() < 1e-4);
    assert!(matches!(
        evaluate_run(&run_dir, None, &fixture_locator(), 0),
        Err(TrainError::InvalidConfig(_))
    ));

    // A second run into the same directory is refused; nothing is overwritten.
    let before = std::fs::read(run_dir.join(files::MODEL)).unwrap();
    assert!(matches!(
        train(&config, &options),
        Err(TrainError::RunExists { .. })
    ));
    assert_eq!(std::fs::read(run_dir.join(files::MODEL)).unwrap(), before);
}

#[test]
fn training_on_idx_data_with_one_channel() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions {
        run_dir: tmp.path().join("run"),
        locator: fixture_locator(),
    };
    let mut config = tiny_config(DatasetKind::FashionMnist, Placement::Bn);
    config.epochs = 1;
    let summary = train(&config, &options).unwrap();
    assert_eq!(summary.test.num_images, 3);
    assert_eq!(config.network().unwrap().in_channels(), 1);
}

#[test]
fn training_errors() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let options = |dir: &str| RunOptions {
        run_dir: tmp.path().join(dir),
        locator: fixture_locator(),
    };
    let config = tiny_config(DatasetKind::Cifar10, Placement::Bn);
    let e = resume(&options("none")).unwrap_err();
    assert!(matches!(e, TrainError::NothingToResume { .. }), "{e}");
    let e = evaluate_run(&tmp.path().join("none"), None, &fixture_locator(), 2).unwrap_err();
    assert!(matches!(e, TrainError::NotARun { .. }), "{e}");

    let invalid = |edit: &dyn Fn(&mut TrainConfig)| {
        let mut bad = config.clone();
        edit(&mut bad);
        let e = train(&bad, &options("bad")).unwrap_err();
        assert!(matches!(e, TrainError::InvalidConfig(_)), "{e}");
    };
    invalid(&|c| c.batch_size = 1);
    invalid(&|c| c.lr = 0.0);
    invalid(&|c| c.epochs = 0);
    invalid(&|c| {
        c.schedule = Schedule::Step {
            step_size: 30,
            gamma: -0.1,
        }
    });
    invalid(&|c| {
        c.schedule = Schedule::MultiStep {
            milestones: vec![1],
            gamma: f64::NAN,
        }
    });
    invalid(&|c| {
        c.schedule = Schedule::Cosine {
            t_max: None,
            eta_min: 1.0,
        }
    });
    invalid(&|c| {
        // An XBN placement needs a batch-free norm.
        c.model = "resnet20-xbn-p2".parse().unwrap();
        c.bfn = NormConfig::batch();
    });
    // None of these left a directory behind.
    assert!(!tmp.path().join("bad").exists());

    // A norm that cannot be built, or missing data: a typed error and no run directory, so
    // the corrected command can run in the same place.
    let mut bad_norm = config.clone();
    bad_norm.model = "resnet20-xbn-p2".parse().unwrap();
    bad_norm.bfn = NormConfig::group(12);
    let e = train(&bad_norm, &options("retry")).unwrap_err();
    assert!(matches!(e, TrainError::Model(_)), "{e}");
    let mut missing = config.clone();
    missing.dataset = DatasetKind::Mnist;
    let e = train(&missing, &options("retry")).unwrap_err();
    assert!(matches!(e, TrainError::Data(_)), "{e}");
    assert!(
        e.to_string().contains("does not hold the mnist dataset"),
        "{e}"
    );
    assert!(!tmp.path().join("retry").exists());
    train(&config, &options("retry")).unwrap();

    #[cfg(not(feature = "wgpu"))]
    {
        let e = BackendKind::Wgpu.device().unwrap_err();
        assert!(e.to_string().contains("--features wgpu"), "{e}");
    }
    let e = evaluate_run(
        &tmp.path().join("retry"),
        Some(Path::new("/nonexistent/model.safetensors")),
        &fixture_locator(),
        2,
    )
    .unwrap_err();
    assert!(matches!(e, TrainError::Checkpoint(_)), "{e}");
}

#[test]
fn last_checkpoint_skips_a_partly_written_one() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut config = tiny_config(DatasetKind::Cifar10, Placement::Bn);
    config.epochs = 2;
    train(
        &config,
        &RunOptions {
            run_dir: run_dir.clone(),
            locator: fixture_locator(),
        },
    )
    .unwrap();
    let dir = run_dir.join(files::CHECKPOINTS);
    assert_eq!(last_checkpoint(&dir), Some(2));
    // A kill while epoch 2's model file was written leaves a truncated file.
    let model2 = dir.join("model-2.bpk");
    let bytes = std::fs::read(&model2).unwrap();
    std::fs::write(&model2, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(last_checkpoint(&dir), Some(1));
    std::fs::remove_file(dir.join("scheduler-1.bpk")).unwrap();
    assert_eq!(last_checkpoint(&dir), None);
}

/// Writes a synthetic CIFAR-10 (binary format) of `per_file` images per batch file.
fn synthetic_cifar(dir: &Path, per_file: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u8
    };
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        let mut bytes = Vec::with_capacity(per_file * 3073);
        for _ in 0..per_file {
            bytes.push(next() % 10);
            bytes.extend((0..3072).map(|_| next()));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn xbn(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xbn"));
    c.args(args).stdin(Stdio::null());
    c
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar10");
    synthetic_cifar(&data, 64);
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let data_s = data.to_str().unwrap();
    let args = [
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        data_s,
        "--no-download",
        "--model",
        "resnet20",
        "--norm-plan",
        "xbn-p2",
        "--epochs",
        "5",
        "--batch-size",
        "16",
        "--output",
        run_s,
    ];
    let mut child = xbn(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the process once the first checkpoint is written (SIGKILL: no clean-up).
    let first = run.join("checkpoint/scheduler-1.bpk");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !run.join(files::FINAL).exists(),
        "the run finished before the kill"
    );
    let done_epochs = read_metrics(&run.join(files::METRICS))
        .map(|r| r.len())
        .unwrap_or(0);
    assert!(done_epochs < 5);

    // Resume with the run directory only: everything else comes from its config.json.
    let output = xbn(&["train", "--resume", "--output", run_s])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let resumed_from = xbn::train::last_checkpoint(&run.join("checkpoint"));
    assert_eq!(resumed_from, Some(5));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join(files::FINAL)).unwrap()).unwrap();
    let from = summary["resumed_from_epoch"].as_u64().expect("resumed") as usize;
    assert!((1..5).contains(&from), "{from}");
    assert!(
        stderr.contains(&format!("from the checkpoint of epoch {from}")),
        "{stderr}"
    );
    // Every epoch appears once in metrics.csv, the interrupted one included.
    let rows = read_metrics(&run.join(files::METRICS)).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );

    // `xbn eval` and `xbn esm --run` find the data through the run's config.json too, and
    // eval scores burn-train's checkpoint of the last epoch like the final weights.
    for checkpoint in [None, Some("checkpoint/model-5.bpk")] {
        let mut args = vec!["eval", "--run", run_s, "--no-download", "--json"];
        let path = checkpoint.map(|c| run.join(c));
        if let Some(p) = &path {
            args.extend(["--checkpoint", p.to_str().unwrap()]);
        }
        let out = xbn(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            eval["correct"], summary["test"]["correct"],
            "{checkpoint:?}"
        );
    }
    let esm_dir = tmp.path().join("esm");
    let out = xbn(&[
        "esm",
        "--run",
        run_s,
        "--no-download",
        "--output",
        esm_dir.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(esm_dir.join("esm.csv").is_file());
    // Data moved since training: the other places are searched, with a warning.
    let moved = tmp.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(&data, moved.join("cifar10")).unwrap();
    let out = xbn(&["eval", "--run", run_s, "--no-download", "--json"])
        .env("XBN_DATA", &moved)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("no longer holds cifar10"), "{stderr}");
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["correct"], summary["test"]["correct"]);
    let _: PathBuf = run;
}

#[test]
fn cli_usage_errors_are_reported() {
    let out = xbn(&["train", "--model", "resnet21"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resnet20"));
    let out = xbn(&["train", "--bfn", "gn:x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A repeated option overrides the earlier one (so the README command can be extended),
    // and a training set smaller than a batch is refused naming both options.
    let tmp_out = tempfile::tempdir().unwrap();
    let out = xbn(&[
        "train",
        "--train-limit",
        "1000",
        "--train-limit",
        "50",
        "--output",
        tmp_out.path().join("run").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--train-limit 50 is smaller than one batch (--batch-size 128)"),
        "{stderr}"
    );
    assert!(!tmp_out.path().join("run").exists());
    let tmp = tempfile::tempdir().unwrap();
    let out = xbn(&["eval", "--run", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an xbn run directory"));
    // Batch size 0 and an ESM pass with nothing to measure are usage errors.
    let run = tmp.path().to_str().unwrap();
    for (args, message) in [
        (
            &["eval", "--run", run, "--batch-size", "0"][..],
            "--batch-size",
        ),
        (
            &["esm", "--run", run, "--batch-size", "0"][..],
            "--batch-size",
        ),
        (&["esm"][..], "--run <DIR>|--model <MODEL>"),
    ] {
        let out = xbn(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // --bfn with the plain-BN plan is refused rather than ignored.
    let out = xbn(&[
        "train",
        "--model",
        "resnet20",
        "--bfn",
        "ln",
        "--output",
        tmp_out.path().join("bn-ln").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resnet20 has no batch-free norm"),
        "{stderr}"
    );
    assert!(!tmp_out.path().join("bn-ln").exists());
}

#[test]
fn tracking_esm_does_not_change_the_training() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    // ShuffleNetV2 2.0× has dropout: its training draws random numbers after the start.
    let run = |dir: &str, track: bool| {
        let mut config = TrainConfig::new(
            DatasetKind::Cifar10,
            "shufflenet-v2-2.0x-xbn".parse().unwrap(),
        );
        config.epochs = 2;
        config.batch_size = 4;
        config.lr = 0.05;
        config.track_esm = track;
        let options = RunOptions {
            run_dir: tmp.path().join(dir),
            locator: fixture_locator(),
        };
        train(&config, &options).unwrap();
        std::fs::read(tmp.path().join(dir).join(files::MODEL)).unwrap()
    };
    let plain = run("plain", false);
    let again = run("again", false);
    let tracked = run("tracked", true);
    assert!(plain == again, "training is not deterministic");
    assert!(plain == tracked, "the tracked run trained differently");
    let dir = tmp.path().join("tracked");
    let rows = xbn::train::read_esm_epochs(&dir.join(files::ESM_EPOCHS)).unwrap();
    // ShuffleNetV2 XBN: 37 BatchNorms, 2 epochs.
    assert_eq!(rows.len(), 74);
    assert_eq!(rows.iter().filter(|r| r.epoch == 2).count(), 37);
    assert!(
        rows.iter()
            .all(|r| r.esm_mean.is_finite() && r.esm_var.is_finite())
    );
    for f in [
        "esm_mean_over_epochs.png",
        "esm_var_over_epochs.svg",
        "error_over_epochs.png",
        "esm/epoch-2.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // The last epoch's tracked ESM is the ESM of the final model.
    let fresh = || {
        xbn::train::build_model(
            &TrainConfig::load(&dir.join(files::CONFIG)).unwrap(),
            &Device::flex(),
        )
        .unwrap()
        .valid()
    };
    let model = xbn::checkpoint::load_safetensors(fresh(), &dir.join(files::MODEL)).unwrap();
    // burn-train's checkpoint of the last epoch holds the same weights, and load_weights
    // reads it (`xbn eval --checkpoint RUN/checkpoint/model-2.bpk`).
    let (from_checkpoint, report) = xbn::checkpoint::load_weights(
        fresh(),
        &dir.join("checkpoint/model-2.bpk"),
        &xbn::checkpoint::LoadOptions::default(),
    )
    .unwrap();
    assert!(report.loaded > 0);
    // A run's checkpoint is a whole model: partial loading is refused, not half-applied.
    let partial = xbn::checkpoint::LoadOptions {
        allow_partial: true,
        ..Default::default()
    };
    assert!(matches!(
        xbn::checkpoint::load_weights(fresh(), &dir.join("checkpoint/model-2.bpk"), &partial),
        Err(xbn::checkpoint::CheckpointError::Store { .. })
    ));
    assert!(matches!(
        xbn::checkpoint::load_weights(
            fresh(),
            &dir.join("checkpoint/model-9.bpk"),
            &Default::default()
        ),
        Err(xbn::checkpoint::CheckpointError::NotFound { .. })
    ));
    let x: Tensor<4> = Tensor::random([2, 3, 32, 32], Distribution::Default, &Device::flex());
    assert_eq!(
        to_vec(from_checkpoint.forward(x.clone())),
        to_vec(model.forward(x))
    );
    let test = xbn::data::ImageDataset::load(
        DatasetKind::Cifar10,
        xbn::data::Split::Test,
        &fixture("cifar10"),
    )
    .unwrap();
    let report =
        xbn::esm::measure_dataset(&model, test, DatasetKind::Cifar10, 2, &Device::flex()).unwrap();
    for (l, r) in report
        .layers
        .iter()
        .zip(rows.iter().filter(|r| r.epoch == 2))
    {
        assert_eq!(l.path, r.path);
        assert!(
            (l.esm_mean - r.esm_mean).abs() <= 1e-9 * l.esm_mean.max(1.0),
            "{} {}",
            l.esm_mean,
            r.esm_mean
        );
    }
}

/// Issue 8, item 1: two `xbn train` processes started together on one run directory:
/// exactly one trains it, the other exits non-zero naming the holder (or the finished
/// run), and the run directory holds one run. `xbn eval` on a run that is being trained
/// says so instead of failing obscurely.
#[test]
fn one_writer_per_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar10");
    synthetic_cifar(&data, 32);
    let run = tmp.path().join("run");
    let (run_s, data_s) = (run.to_str().unwrap(), data.to_str().unwrap());
    let args = |seed: &'static str| {
        vec![
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            data_s,
            "--no-download",
            "--model",
            "resnet20",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--seed",
            seed,
            "--output",
            run_s,
        ]
    };
    let children: Vec<_> = ["1", "2"]
        .into_iter()
        .map(|seed| {
            xbn(&args(seed))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(winners.len(), 1, "exactly one run may write {run_s}");
    let loser = outputs.iter().find(|o| !o.status.success()).unwrap();
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(
        stderr.contains("is being written by another xbn run (pid ")
            || stderr.contains("already holds a run"),
        "{stderr}"
    );
    let rows = read_metrics(&run.join(files::METRICS)).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);

    // While a process holds the lock: a new run, a resume and an eval of the missing
    // final weights are refused with the holder named; nothing is written.
    let other = tmp.path().join("busy");
    std::fs::create_dir(&other).unwrap();
    let lock = xbn::train::RunLock::acquire(&other).unwrap();
    let options = RunOptions {
        run_dir: other.clone(),
        locator: fixture_locator(),
    };
    let config = tiny_config(DatasetKind::Cifar10, Placement::Bn);
    let e = train(&config, &options).unwrap_err();
    let pid = format!("pid {}", std::process::id());
    assert!(
        matches!(&e, TrainError::RunLocked { holder, .. } if holder.contains(&pid)),
        "{e}"
    );
    assert!(!other.join(files::CONFIG).exists());
    config.save(&other.join(files::CONFIG)).unwrap();
    let e = resume(&options).unwrap_err();
    assert!(matches!(e, TrainError::RunLocked { .. }), "{e}");
    let e = evaluate_run(&other, None, &fixture_locator(), 2).unwrap_err();
    assert!(
        matches!(&e, TrainError::StillTraining { holder, .. } if holder.contains(&pid)),
        "{e}"
    );
    assert_eq!(xbn::train::holder(&other).unwrap(), {
        let text = std::fs::read_to_string(lock.path()).unwrap();
        text.trim().to_string()
    });
    drop(lock);
    // Released (as it is when a killed process's lock file is left behind): taken over.
    assert!(xbn::train::holder(&other).is_none());
    let _rng = common::rng_lock();
    resume(&options).unwrap();
}

/// Issue 8, item 2: a batch size larger than the data set is refused before anything is
/// allocated or written (training), or capped at the data set (evaluation); a batch that
/// cannot fit in memory is a typed error.
#[test]
fn huge_batch_sizes_are_refused_or_capped() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions {
        run_dir: tmp.path().join("run"),
        locator: fixture_locator(),
    };
    let mut config = tiny_config(DatasetKind::Cifar10, Placement::XbnP2);
    config.batch_size = 1_000_000_000_000;
    let e = train(&config, &options).unwrap_err();
    assert!(
        matches!(&e, TrainError::InvalidConfig(m) if m.contains("larger than the 10 training images")),
        "{e}"
    );
    assert!(
        !options.run_dir.exists(),
        "a failed start leaves no run directory"
    );
    config.batch_size = 4;
    config.epochs = 1;
    train(&config, &options).unwrap();
    let huge = evaluate_run(
        &options.run_dir,
        None,
        &fixture_locator(),
        1_000_000_000_000,
    )
    .unwrap();
    let small = evaluate_run(&options.run_dir, None, &fixture_locator(), 1).unwrap();
    assert_eq!(
        (huge.num_images, huge.correct),
        (small.num_images, small.correct)
    );
    let e = xbn::train::check_batch_memory(BackendKind::Flex, u64::MAX, 7, "a training step");
    if xbn::train::available_memory().is_some() {
        let e = e.unwrap_err();
        assert!(
            e.to_string().contains("batch size 7 needs about")
                && e.to_string().contains("lower --batch-size"),
            "{e}"
        );
    }
    let model = config.network().unwrap().init(&Device::flex()).unwrap();
    // ResNet-20 on 32×32: 16·32²·7 + 32·16²·6 + 64·8²·6 + 10 output values of its layers.
    assert_eq!(
        model.cost([32, 32]).activations,
        114_688 + 49_152 + 24_576 + 10
    );
    assert_eq!(
        xbn::train::estimate_batch_bytes(&model, [3, 32, 32], 2, true),
        2 * (16 * 188_426 + 8 * 3 * 32 * 32)
    );
}

/// Issue 8, item 3: a loss that stops being finite stops the run with an error naming the
/// epoch and step; the checkpoints of the finished epochs stay, no final weights are
/// written; a divergence in the first epoch leaves no run directory. Weights that hold NaN
/// are refused by `xbn eval`.
#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let options = |dir: &str| RunOptions {
        run_dir: tmp.path().join(dir),
        locator: fixture_locator(),
    };
    let mut config = tiny_config(DatasetKind::Cifar10, Placement::Bn);
    config.lr = 1e30;
    let e = train(&config, &options("first")).unwrap_err();
    match &e {
        TrainError::Diverged {
            epoch: 1,
            iteration,
            loss,
            ..
        } => assert!(*iteration >= 1 && !loss.is_finite()),
        e => panic!("expected a divergence in epoch 1, got {e}"),
    }
    assert!(e.to_string().contains("lower --lr"), "{e}");
    assert!(!tmp.path().join("first").exists());
    // In a folder that existed before, only the run's own files go; the user's stay.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let e = train(&config, &options("mine")).unwrap_err();
    assert!(matches!(e, TrainError::Diverged { epoch: 1, .. }), "{e}");
    let left: Vec<String> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(left.contains(&"notes.txt".to_string()), "{left:?}");
    assert!(!mine.join(files::CONFIG).exists() && !mine.join(files::METRICS).exists());
    // The corrected command runs in the same place.
    let mut fixed = config.clone();
    fixed.lr = 0.01;
    fixed.epochs = 1;
    train(&fixed, &options("mine")).unwrap();

    // Epoch 1 at lr 0.01, epoch 2 at 1e30.
    config.lr = 0.01;
    config.schedule = Schedule::MultiStep {
        milestones: vec![1],
        gamma: 1e32,
    };
    let run = options("second");
    let e = train(&config, &run).unwrap_err();
    assert!(matches!(e, TrainError::Diverged { epoch: 2, .. }), "{e}");
    assert!(
        e.to_string().contains("the checkpoint of epoch 1 is kept"),
        "{e}"
    );
    let checkpoints = run.run_dir.join(files::CHECKPOINTS);
    assert_eq!(last_checkpoint(&checkpoints), Some(1));
    assert!(!checkpoints.join("model-2.bpk").exists());
    assert!(!run.run_dir.join(files::MODEL).exists());
    assert!(!run.run_dir.join(files::FINAL).exists());
    let rows = read_metrics(&run.run_dir.join(files::METRICS)).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1]);
    let kept = checkpoints.join("model-1.bpk");
    let good = evaluate_run(&run.run_dir, Some(&kept), &fixture_locator(), 4).unwrap();
    assert!(good.loss.is_finite());

    // NaN weights (as a diverged run would have written them) are refused.
    let nan_file = tmp.path().join("nan.safetensors");
    let model = config.network().unwrap().init(&Device::flex()).unwrap();
    xbn::checkpoint::save_safetensors(&model, &nan_file).unwrap();
    let mut bytes = std::fs::read(&nan_file).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header["fc.weight"]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header_len + start;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&nan_file, &bytes).unwrap();
    let e = evaluate_run(&run.run_dir, Some(&nan_file), &fixture_locator(), 4).unwrap_err();
    assert!(
        matches!(
            &e,
            TrainError::Checkpoint(xbn::checkpoint::CheckpointError::NonFinite { count: 1, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("NaN or infinite"), "{e}");
}

/// `--track-esm` on a model without BatchNorm, and a `config.json` that is a directory.
#[test]
fn run_setup_errors_say_what_is_wrong() {
    let _rng = common::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tiny_config(DatasetKind::Cifar10, Placement::All);
    config.track_esm = true;
    let run_dir = tmp.path().join("gn");
    let e = train(
        &config,
        &RunOptions {
            run_dir: run_dir.clone(),
            locator: fixture_locator(),
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, TrainError::InvalidConfig(m) if m.contains("--track-esm") && m.contains("has none")),
        "{e}"
    );
    assert!(!run_dir.exists());
    let odd = tmp.path().join("odd");
    std::fs::create_dir_all(odd.join(files::CONFIG)).unwrap();
    let e = evaluate_run(&odd, None, &fixture_locator(), 2).unwrap_err();
    assert!(matches!(e, TrainError::Io { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

/// Issue 9, item 2: `xbn predict --run DIR IMAGE…` rebuilds the run's model (one grey
/// channel, ten classes), preprocesses like the run's data (28×28 grey, Fashion-MNIST's
/// mean/std) and prints Fashion-MNIST's class names; its top-1 classes are the model's
/// predictions on the same test images as `xbn eval` scores them.
#[test]
fn predict_uses_the_run() {
    use burn::data::dataset::Dataset;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut config = tiny_config(DatasetKind::FashionMnist, Placement::XbnP2);
    config.epochs = 1;
    {
        let _rng = common::rng_lock();
        train(
            &config,
            &RunOptions {
                run_dir: run.clone(),
                locator: fixture_locator(),
            },
        )
        .unwrap();
    }
    // The test images as PNG files, and the model's own predictions on them.
    let test = xbn::train::load_split(&config, xbn::data::Split::Test, &fixture_locator()).unwrap();
    let mut paths = Vec::new();
    for i in 0..test.len() {
        let item = test.get(i).unwrap();
        let path = tmp.path().join(format!("test-{i}.png"));
        image::GrayImage::from_raw(28, 28, item.pixels)
            .unwrap()
            .save(&path)
            .unwrap();
        paths.push(path);
    }
    let device = Device::flex();
    let model = xbn::train::load_run_weights(
        config.network().unwrap().init(&device).unwrap(),
        &run,
        &run.join(files::MODEL),
    )
    .unwrap()
    .valid();
    let loader = xbn::data::eval_loader(test.clone(), DatasetKind::FashionMnist, 8, &device);
    let batch = loader.iter().next().unwrap().unwrap();
    let predicted: Vec<usize> = model
        .forward(batch.images)
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|c| c as usize)
        .collect();

    let mut args = vec!["predict", "--run", run.to_str().unwrap(), "--top-k", "1"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = xbn(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = DatasetKind::FashionMnist.class_names();
    let top1: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("1. class"))
        .collect();
    assert_eq!(top1.len(), paths.len(), "{stdout}");
    for (line, class) in top1.iter().zip(&predicted) {
        assert!(
            line.contains(&format!("class {class:>4}")) && line.ends_with(names[*class]),
            "{line} (expected class {class}, {})",
            names[*class]
        );
    }
    // Options of the zoo path do not mix with --run.
    let out = xbn(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--resize",
        "64",
        "x.png",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

//! A training run: run directory, burn-train `Learner`, checkpoints, resume, final score.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use burn::lr_scheduler::LrSchedulerRecord;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, OptimizerRecord, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::Checkpoint;
use burn::train::logger::FileMetricLogger;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use serde::{Deserialize, Serialize};

use super::metrics_csv::{EpochCsvLogger, EpochRow, read_metrics, truncate_metrics};
use super::renderer::LineRenderer;
use super::{EpochLrScheduler, EvalResult, TrainConfig, TrainError, evaluate};
use crate::checkpoint::save_safetensors;
use crate::data::{DataLocator, ImageDataset, Split, eval_loader, train_loader};
use crate::models::ResNet;

/// File names inside a run directory.
pub mod files {
    /// The run's [`TrainConfig`](crate::train::TrainConfig).
    pub const CONFIG: &str = "config.json";
    /// Per-epoch metrics, one row per epoch.
    pub const METRICS: &str = "metrics.csv";
    /// Final model weights (PyTorch names).
    pub const MODEL: &str = "model.safetensors";
    /// Final test score and timings.
    pub const FINAL: &str = "final.json";
    /// burn-train checkpoints (`model-N.bpk`, `optim-N.bpk`, `scheduler-N.bpk`).
    pub const CHECKPOINTS: &str = "checkpoint";
}

/// Where and how a run is executed (not part of the run's configuration).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    /// Where the dataset is read from.
    pub locator: DataLocator,
}

/// What a finished run reports (also written to `final.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The epoch whose checkpoint the run resumed from, if it resumed.
    pub resumed_from_epoch: Option<usize>,
    /// Final score on the test set, in inference mode.
    pub test: EvalResult,
    /// Per-epoch metrics (all epochs of the run, including those before a resume).
    pub epochs: Vec<EpochRow>,
    /// Path of the saved weights.
    pub model_path: PathBuf,
}

/// Loads the train and test splits of the configured dataset (with the configured limits).
///
/// # Errors
/// A [`TrainError::Data`] when the data cannot be found or read.
pub fn load_datasets(
    config: &TrainConfig,
    locator: &DataLocator,
) -> Result<(ImageDataset, ImageDataset), TrainError> {
    let dir = locator.locate(config.dataset)?;
    let limit = |ds: ImageDataset, n: Option<usize>| match n {
        Some(n) if n < ds.len() => ds.subset((0..n).collect()),
        _ => Ok(ds),
    };
    let train = limit(
        ImageDataset::load(config.dataset, Split::Train, &dir)?,
        config.train_limit,
    )?;
    let test = limit(
        ImageDataset::load(config.dataset, Split::Test, &dir)?,
        config.test_limit,
    )?;
    Ok((train, test))
}

/// The newest epoch of `checkpoint_dir` whose model, optimizer and scheduler files all
/// load. Partially written files (a run killed while saving) are skipped, so the previous
/// checkpoint is used instead.
pub fn last_checkpoint(checkpoint_dir: &Path) -> Option<usize> {
    let mut epochs: Vec<usize> = std::fs::read_dir(checkpoint_dir)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .collect();
    epochs.sort_unstable();
    epochs.into_iter().rev().find(|&epoch| {
        let path = |kind: &str| checkpoint_dir.join(format!("{kind}-{epoch}.bpk"));
        <ModuleRecord as Checkpoint>::load(path("model")).is_ok()
            && <OptimizerRecord as Checkpoint>::load(path("optim")).is_ok()
            && <LrSchedulerRecord as Checkpoint>::load(path("scheduler")).is_ok()
    })
}

/// Trains the configured network with burn-train's `Learner` and scores it.
///
/// The run directory receives `config.json`, `metrics.csv` (a row per epoch),
/// burn-train's checkpoints and logs, `model.safetensors` (the final weights, PyTorch
/// names) and `final.json` (the test score in inference mode). SGD uses PyTorch's
/// semantics (momentum with dampening 0, L2 weight decay on every parameter).
///
/// With `options.resume`, the configuration is read from the run directory and training
/// continues from the newest complete checkpoint (a run killed mid-epoch repeats that
/// epoch). The data order after a resume is not the one an uninterrupted run would have
/// seen (the shuffling and augmentation streams restart from the seed).
///
/// # Errors
/// [`TrainError::RunExists`] when `run_dir` already holds a run and `resume` is off,
/// [`TrainError::NothingToResume`] when there is no run to resume, and any data, model,
/// training or checkpoint error.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary, TrainError> {
    let run_dir = &options.run_dir;
    let config_path = run_dir.join(files::CONFIG);
    let checkpoint_dir = run_dir.join(files::CHECKPOINTS);
    let (config, resume_epoch) = if options.resume {
        if !config_path.is_file() {
            return Err(TrainError::NothingToResume {
                dir: run_dir.clone(),
            });
        }
        let mut saved = TrainConfig::load(&config_path)?;
        // The number of epochs may be raised on resume; nothing else changes.
        saved.epochs = saved.epochs.max(config.epochs);
        (saved, last_checkpoint(&checkpoint_dir))
    } else {
        if config_path.exists() || checkpoint_dir.exists() {
            return Err(TrainError::RunExists {
                dir: run_dir.clone(),
            });
        }
        (config.clone(), None)
    };
    config.validate()?;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    config.save(&config_path)?;

    let device = config.backend.device()?;
    let (train_set, test_set) = load_datasets(&config, &options.locator)?;
    let model = build_model(&config, &device)?;

    let metrics_path = run_dir.join(files::METRICS);
    match resume_epoch {
        Some(epoch) => truncate_metrics(&metrics_path, epoch),
        None => truncate_metrics(&metrics_path, 0),
    }
    .map_err(|e| TrainError::io(&metrics_path, std::io::Error::other(e)))?;

    let train_images = train_set.len();
    let iters_per_epoch = train_images.div_ceil(config.batch_size);
    let scheduler = EpochLrScheduler::new(
        config.lr,
        config.schedule.clone(),
        config.epochs,
        iters_per_epoch,
    );
    let optim = sgd(&config);

    let loader_train = train_loader(
        train_set,
        config.dataset,
        config.augmentation.clone(),
        config.batch_size,
        config.seed,
        &device,
    );
    let loader_test = eval_loader(test_set.clone(), config.dataset, config.batch_size, &device);

    let (base_lr, schedule, epochs) = (config.lr, config.schedule.clone(), config.epochs);
    let lr_of_epoch = move |epoch: usize| schedule.lr(base_lr, epoch.saturating_sub(1), epochs);
    let mut training = SupervisedTraining::new(run_dir, loader_train, loader_test.clone())
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_metric_logger(FileMetricLogger::new(run_dir))
        .with_metric_logger(EpochCsvLogger::new(
            &metrics_path,
            train_images,
            lr_of_epoch,
        ))
        .with_default_checkpointers()
        .num_epochs(config.epochs);
    if !std::io::stdout().is_terminal() {
        // burn-train's dashboard needs a terminal; its plain fallback prints every batch.
        training = training.renderer(Box::new(LineRenderer::new()));
    }
    if let Some(epoch) = resume_epoch {
        eprintln!(
            "resuming {} from the checkpoint of epoch {epoch}",
            run_dir.display()
        );
        training = training.checkpoint(epoch);
    }
    let result = training.launch(Learner::new(model, optim, scheduler));
    drop(result.renderer);
    if let Some(error) = result.error {
        return Err(TrainError::Learner(error.to_string()));
    }
    if result.interrupted.is_some() {
        return Err(TrainError::Interrupted {
            dir: run_dir.clone(),
        });
    }

    let model = result.model;
    let model_path = run_dir.join(files::MODEL);
    save_safetensors(&model, &model_path)?;
    let test = super::evaluate::evaluate_loader(&model, loader_test.as_ref())?;
    let summary = RunSummary {
        run_dir: run_dir.clone(),
        resumed_from_epoch: resume_epoch,
        test,
        epochs: read_metrics(&metrics_path)
            .map_err(|e| TrainError::io(&metrics_path, std::io::Error::other(e)))?,
        model_path,
    };
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    super::write_atomic(&run_dir.join(files::FINAL), json.as_bytes())?;
    Ok(summary)
}

/// SGD as PyTorch's `torch.optim.SGD(momentum=m, dampening=0, weight_decay=wd)`:
/// `g += wd·p; v = m·v + g; p -= lr·v` (the first step uses `v = g`). Burn's momentum
/// defaults to dampening 0.1, which xbn sets to 0.
pub fn sgd(config: &TrainConfig) -> ModuleOptimizer {
    let momentum = (config.momentum > 0.0).then_some(MomentumConfig {
        momentum: config.momentum,
        dampening: 0.0,
        nesterov: false,
    });
    let weight_decay = (config.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: config.weight_decay as f32,
    });
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(weight_decay)
        .init()
}

/// Builds the configured model on the autodiff version of `device`, seeded with the
/// run's seed.
///
/// # Errors
/// [`TrainError::Model`] when the configuration cannot be built.
pub fn build_model(config: &TrainConfig, device: &Device) -> Result<ResNet, TrainError> {
    let device = device.clone().autodiff();
    device.seed(config.seed);
    Ok(config.model.init(&device)?)
}

/// Scores the weights of a finished run (or any `model.safetensors` with its
/// `config.json`) on the test set of the run's dataset.
///
/// # Errors
/// [`TrainError::NothingToResume`]-like errors for a missing config, a
/// [`CheckpointError`](crate::checkpoint::CheckpointError) for missing or mismatched
/// weights, and data errors.
pub fn evaluate_run(
    run_dir: &Path,
    checkpoint: Option<&Path>,
    locator: &DataLocator,
    batch_size: usize,
) -> Result<EvalResult, TrainError> {
    let config_path = run_dir.join(files::CONFIG);
    if !config_path.is_file() {
        return Err(TrainError::NotARun {
            dir: run_dir.to_path_buf(),
        });
    }
    let config = TrainConfig::load(&config_path)?;
    let device = config.backend.device()?;
    let model = config.model.init(&device)?;
    let weights = checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join(files::MODEL));
    let model = crate::checkpoint::load_safetensors(model, &weights)?;
    let (_, test_set) = load_datasets(&config, locator)?;
    evaluate(&model, test_set, config.dataset, batch_size, &device)
}

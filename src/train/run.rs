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
use burn::train::checkpoint::{Checkpoint, FileCheckpointer};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use serde::{Deserialize, Serialize};

use super::metrics_csv::{EpochCsvLogger, EpochRow, read_metrics, truncate_metrics};
use super::renderer::LineRenderer;
use super::track::{EsmTracker, plot_over_epochs, truncate_esm_epochs};
use super::{EpochLrScheduler, EvalResult, TrainConfig, TrainError, evaluate};
use crate::checkpoint::save_safetensors;
use crate::data::{DataError, DataLocator, ImageDataset, Split, eval_loader, train_loader};
use crate::esm::EsmError;
use crate::models::Network;

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
    /// Per-epoch, per-layer ESM on the test set (`--track-esm`).
    pub const ESM_EPOCHS: &str = "esm_epochs.csv";
}

/// Where a run is executed (not part of the run's configuration).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory.
    pub run_dir: PathBuf,
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

/// Loads one split of the configured dataset, cut to the configured limit
/// (`train_limit` / `test_limit`: the first `n` images). A `locator` without a data
/// folder first tries the run's own (`config.data_dir`, the `--data-dir` it was started
/// with), so resuming, scoring or measuring a run reads the data it was trained on; if
/// that folder no longer holds the data, it searches as `locator` does.
///
/// # Errors
/// A [`TrainError::Data`] when the data cannot be found or read.
pub fn load_split(
    config: &TrainConfig,
    split: Split,
    locator: &DataLocator,
) -> Result<ImageDataset, TrainError> {
    let saved = match (&locator.data_dir, &config.data_dir) {
        (None, Some(run_dir)) => {
            let mut saved = locator.clone();
            saved.data_dir = Some(run_dir.clone());
            match saved.locate_splits(config.dataset, &[split]) {
                Ok(dir) => Some(dir),
                Err(DataError::NotInDataDir { .. }) => {
                    eprintln!(
                        "warning: {} (the run's --data-dir) no longer holds {}; searching the default places",
                        run_dir.display(),
                        config.dataset.name()
                    );
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let dir = match saved {
        Some(dir) => dir,
        None => locator.locate_splits(config.dataset, &[split])?,
    };
    let dataset = ImageDataset::load(config.dataset, split, &dir)?;
    let limit = match split {
        Split::Train => config.train_limit,
        Split::Test => config.test_limit,
    };
    Ok(match limit {
        Some(n) if n < dataset.len() => dataset.subset((0..n).collect())?,
        _ => dataset,
    })
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

/// Trains the configured network with burn-train's `Learner` and scores it: a new run in
/// `options.run_dir`.
///
/// Everything that can fail on the user's input (configuration, backend, data, model) is
/// checked before the run directory is written, so a failed start leaves nothing behind.
/// The run directory then receives `config.json`, `metrics.csv` (a row per epoch),
/// burn-train's checkpoints and logs, `model.safetensors` (the final weights, PyTorch
/// names) and `final.json` (the test score in inference mode). SGD uses PyTorch's
/// semantics (momentum with dampening 0, L2 weight decay on every parameter).
///
/// # Errors
/// [`TrainError::RunExists`] when `run_dir` already holds a run (use [`resume`]), and any
/// configuration, data, model, training or checkpoint error.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary, TrainError> {
    let run_dir = &options.run_dir;
    if run_dir.join(files::CONFIG).exists() || run_dir.join(files::CHECKPOINTS).exists() {
        return Err(TrainError::RunExists {
            dir: run_dir.clone(),
        });
    }
    let prepared = prepare(config, &options.locator)?;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    config.save(&run_dir.join(files::CONFIG))?;
    run(config, prepared, run_dir, None)
}

/// Continues the run in `options.run_dir` from its newest complete checkpoint, with the
/// configuration saved in its `config.json` (same epochs, schedule and data; the data
/// folder recorded there is used unless `options.locator` names one). A run killed
/// mid-epoch redoes that epoch; a run killed before its first checkpoint starts over.
/// The data order after a resume is not the one an uninterrupted run would have seen (the
/// shuffling and augmentation streams restart from the seed).
///
/// # Errors
/// [`TrainError::NothingToResume`] when the directory holds no `config.json`, and any
/// data, model, training or checkpoint error.
pub fn resume(options: &RunOptions) -> Result<RunSummary, TrainError> {
    let run_dir = &options.run_dir;
    let config_path = run_dir.join(files::CONFIG);
    if !config_path.is_file() {
        return Err(TrainError::NothingToResume {
            dir: run_dir.clone(),
        });
    }
    let config = TrainConfig::load(&config_path)?;
    let prepared = prepare(&config, &options.locator)?;
    let epoch = last_checkpoint(&run_dir.join(files::CHECKPOINTS));
    match epoch {
        Some(epoch) => eprintln!(
            "resuming {} from the checkpoint of epoch {epoch}",
            run_dir.display()
        ),
        None => eprintln!(
            "{} has no complete checkpoint yet: training starts over from epoch 1",
            run_dir.display()
        ),
    }
    run(&config, prepared, run_dir, epoch)
}

/// What a run needs, built and checked before anything is written.
struct Prepared {
    device: Device,
    train_set: ImageDataset,
    test_set: ImageDataset,
    model: Network,
    /// The model the ESM tracker loads checkpoints into (`--track-esm`).
    esm_template: Option<Network>,
}

fn prepare(config: &TrainConfig, locator: &DataLocator) -> Result<Prepared, TrainError> {
    config.validate()?;
    let device = config.backend.device()?;
    let train_set = load_split(config, Split::Train, locator)?;
    let test_set = load_split(config, Split::Test, locator)?;
    // Built before the seeded model, so its random draws do not shift the training's.
    let esm_template = match config.track_esm {
        true => Some(config.network()?.init(&device)?),
        false => None,
    };
    let model = build_model(config, &device)?;
    Ok(Prepared {
        device,
        train_set,
        test_set,
        model,
        esm_template,
    })
}

fn run(
    config: &TrainConfig,
    prepared: Prepared,
    run_dir: &Path,
    resume_epoch: Option<usize>,
) -> Result<RunSummary, TrainError> {
    let Prepared {
        device,
        train_set,
        test_set,
        model,
        esm_template,
    } = prepared;
    let metrics_path = run_dir.join(files::METRICS);
    let esm_path = run_dir.join(files::ESM_EPOCHS);
    let keep = resume_epoch.unwrap_or(0);
    truncate_metrics(&metrics_path, keep)
        .map_err(|e| TrainError::io(&metrics_path, std::io::Error::other(e)))?;
    truncate_esm_epochs(&esm_path, keep).map_err(|e| match e {
        EsmError::Io { path, reason } => TrainError::io(&path, std::io::Error::other(reason)),
        e => TrainError::io(&esm_path, std::io::Error::other(e.to_string())),
    })?;

    let train_images = train_set.len();
    let iters_per_epoch = train_images.div_ceil(config.batch_size);
    let scheduler = EpochLrScheduler::new(
        config.lr,
        config.schedule.clone(),
        config.epochs,
        iters_per_epoch,
    );
    let optim = sgd(config.momentum, config.weight_decay);

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
        .num_epochs(config.epochs);
    training = if let Some(template) = esm_template {
        let checkpoints = run_dir.join(files::CHECKPOINTS);
        training.with_custom_checkpointers(
            EsmTracker::new(
                template,
                test_set.clone(),
                config.dataset,
                config.batch_size,
                &device,
                run_dir,
            ),
            FileCheckpointer::new(&checkpoints, "optim"),
            FileCheckpointer::new(&checkpoints, "scheduler"),
        )
    } else {
        training.with_default_checkpointers()
    };
    if !std::io::stdout().is_terminal() {
        // burn-train's dashboard needs a terminal; its plain fallback prints every batch.
        training = training.renderer(Box::new(LineRenderer::new()));
    }
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    let result = training.launch(Learner::new(model, optim, scheduler));
    drop(result.renderer);
    if let Some(error) = result.error {
        return Err(TrainError::Learner(error.to_string()));
    }
    if result.interrupted.is_some() {
        return Err(TrainError::Interrupted {
            dir: run_dir.to_path_buf(),
        });
    }

    let model = result.model;
    let model_path = run_dir.join(files::MODEL);
    save_safetensors(&model, &model_path)?;
    let test = super::evaluate::evaluate_loader(&model, loader_test.as_ref())?;
    let summary = RunSummary {
        run_dir: run_dir.to_path_buf(),
        resumed_from_epoch: resume_epoch,
        test,
        epochs: read_metrics(&metrics_path)
            .map_err(|e| TrainError::io(&metrics_path, std::io::Error::other(e)))?,
        model_path,
    };
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    super::write_atomic(&run_dir.join(files::FINAL), json.as_bytes())?;
    if config.track_esm {
        // Redrawn now that metrics.csv holds every epoch.
        if let Err(e) = plot_over_epochs(run_dir) {
            eprintln!("warning: ESM plots: {e}");
        }
    }
    Ok(summary)
}

/// SGD as PyTorch's `torch.optim.SGD(momentum=m, dampening=0, weight_decay=wd)`:
/// `g += wd·p; v = m·v + g; p -= lr·v` (the first step uses `v = g`). Burn's momentum
/// defaults to dampening 0.1, which xbn sets to 0.
pub fn sgd(momentum: f64, weight_decay: f64) -> ModuleOptimizer {
    let momentum = (momentum > 0.0).then_some(MomentumConfig {
        momentum,
        dampening: 0.0,
        nesterov: false,
    });
    let weight_decay = (weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: weight_decay as f32,
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
pub fn build_model(config: &TrainConfig, device: &Device) -> Result<Network, TrainError> {
    let device = device.clone().autodiff();
    device.seed(config.seed);
    Ok(config.network()?.init(&device)?)
}

/// Scores the weights of a finished run (or any `model.safetensors` with its
/// `config.json`) on the test set of the run's dataset, in inference mode.
///
/// # Errors
/// [`TrainError::NotARun`] when `run_dir` has no `config.json`, a
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
    let model = config.network()?.init(&device)?;
    let weights = checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join(files::MODEL));
    let model = crate::checkpoint::load_safetensors(model, &weights)?;
    let test_set = load_split(&config, Split::Test, locator)?;
    evaluate(&model, test_set, config.dataset, batch_size, &device)
}

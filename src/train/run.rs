//! A training run: run directory, burn-train `Learner`, checkpoints, resume, final score.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use burn::lr_scheduler::LrSchedulerRecord;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, OptimizerRecord, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{Checkpoint, FileCheckpointer};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Interrupter, Learner, SupervisedTraining};
use serde::{Deserialize, Serialize};

use super::metrics_csv::{EpochCsvLogger, EpochRow, read_metrics, truncate_metrics};
use super::renderer::LineRenderer;
use super::track::{EsmTracker, plot_over_epochs, truncate_esm_epochs};
use super::{
    DivergenceGuard, EpochLrScheduler, EvalResult, RunLock, TrainConfig, TrainError,
    check_batch_memory, estimate_batch_bytes, evaluate, inference_batch_size,
};
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
    /// Every file and folder a training run writes into its directory (besides the lock
    /// file): xbn's, burn-train's (`experiment.log`, `train/`, `valid/`) and the
    /// `--track-esm` outputs.
    pub const WRITTEN: &[&str] = &[
        CONFIG,
        METRICS,
        MODEL,
        FINAL,
        CHECKPOINTS,
        ESM_EPOCHS,
        "esm",
        "experiment.log",
        "train",
        "valid",
        "esm_mean_over_epochs.png",
        "esm_mean_over_epochs.svg",
        "esm_var_over_epochs.png",
        "esm_var_over_epochs.svg",
        "error_over_epochs.png",
        "error_over_epochs.svg",
        "esm_epochs.csv.tmp",
        "config.json.tmp",
        "metrics.csv.tmp",
        "model.safetensors.tmp",
        "final.json.tmp",
    ];
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
    let name = match split {
        Split::Train => "training",
        Split::Test => "test",
    };
    let _spinner =
        crate::progress::Progress::spinner(format!("reading the {} {name} set", config.dataset));
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
/// Everything that can fail on the user's input (configuration, backend, data, model,
/// batch size against the data and the memory) is checked before the run directory is
/// written. The run then holds the directory's exclusive lock ([`RunLock`]) until it
/// returns, so a second writer fails instead of mixing two runs. A run that fails before
/// its first checkpoint (e.g. its loss diverges in the first epoch) removes what it wrote,
/// so a failed start leaves no run behind. The run directory receives `config.json`,
/// `metrics.csv` (a row per epoch), burn-train's checkpoints and logs, `model.safetensors`
/// (the final weights, PyTorch names) and `final.json` (the test score in inference mode).
/// SGD uses PyTorch's semantics (momentum with dampening 0, L2 weight decay on every
/// parameter).
///
/// # Errors
/// [`TrainError::RunExists`] when `run_dir` already holds a run (use [`resume`]),
/// [`TrainError::RunLocked`] when another process is writing it,
/// [`TrainError::Diverged`] when the training loss stops being finite, and any
/// configuration, data, model, training or checkpoint error.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary, TrainError> {
    let run_dir = &options.run_dir;
    refuse_existing_run(run_dir)?;
    let prepared = prepare(config, &options.locator)?;
    let created = !run_dir.exists();
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let lock = RunLock::acquire(run_dir)?;
    // Checked again under the lock: another process may have started a run meanwhile.
    refuse_existing_run(run_dir)?;
    let mut start = FailedStart::new(run_dir, created);
    let result = config
        .save(&run_dir.join(files::CONFIG))
        .and_then(|()| run(config, prepared, run_dir, None));
    if result.is_ok() {
        start.disarm();
    }
    // On an error or a panic, `start` removes what the run wrote, still under the lock.
    drop(start);
    drop(lock);
    result
}

fn refuse_existing_run(run_dir: &Path) -> Result<(), TrainError> {
    if run_dir.join(files::CONFIG).exists() || run_dir.join(files::CHECKPOINTS).exists() {
        return Err(TrainError::RunExists {
            dir: run_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Undoes a run that fails (with an error or a panic) before its first complete
/// checkpoint, so the same command can run again in the same place: removes the files xbn
/// and burn-train write into a run directory ([`files::WRITTEN`]) that were not there
/// before, and the directory itself if the run created it and nothing else is in it
/// (it is first renamed aside, so a new run can create the directory anew meanwhile; the
/// lock file goes with it). Files of anyone else are never touched.
struct FailedStart {
    run_dir: PathBuf,
    /// Which of [`files::WRITTEN`] existed before the run (`None`: unknown, no clean-up).
    before: Option<Vec<&'static str>>,
    created: bool,
    armed: bool,
}

impl FailedStart {
    fn new(run_dir: &Path, created: bool) -> Self {
        let before = files::WRITTEN
            .iter()
            .map(|&name| match run_dir.join(name).try_exists() {
                Ok(exists) => Some(exists.then_some(name)),
                Err(_) => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|names| names.into_iter().flatten().collect());
        Self {
            run_dir: run_dir.to_path_buf(),
            before,
            created,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    fn remove_written(&self, dir: &Path, before: &[&str]) {
        for name in files::WRITTEN.iter().filter(|n| !before.contains(n)) {
            let path = dir.join(name);
            let _ = match path.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
        }
    }
}

impl Drop for FailedStart {
    fn drop(&mut self) {
        let Some(before) = &self.before else {
            return;
        };
        if !self.armed || last_checkpoint(&self.run_dir.join(files::CHECKPOINTS)).is_some() {
            return;
        }
        if !self.created {
            self.remove_written(&self.run_dir, before);
            return;
        }
        let mut aside = self.run_dir.as_os_str().to_owned();
        aside.push(format!(".failed-{}", std::process::id()));
        let aside = PathBuf::from(aside);
        if std::fs::rename(&self.run_dir, &aside).is_err() {
            self.remove_written(&self.run_dir, before);
            return;
        }
        self.remove_written(&aside, before);
        let _ = std::fs::remove_file(aside.join(super::LOCK_FILE));
        if std::fs::remove_dir(&aside).is_err() && !self.run_dir.exists() {
            // Someone else's files are in it: put it back.
            let _ = std::fs::rename(&aside, &self.run_dir);
        }
    }
}

/// Continues the run in `options.run_dir` from its newest complete checkpoint, with the
/// configuration saved in its `config.json` (same epochs, schedule and data; the data
/// folder recorded there is used unless `options.locator` names one). A run killed
/// mid-epoch redoes that epoch; a run killed before its first checkpoint starts over.
/// The data order after a resume is not the one an uninterrupted run would have seen (the
/// shuffling and augmentation streams restart from the seed). Holds the directory's lock
/// like [`train`]; nothing of the run is ever removed.
///
/// # Errors
/// [`TrainError::NothingToResume`] when the directory holds no `config.json`,
/// [`TrainError::RunLocked`] when another process is writing it, and any data, model,
/// training or checkpoint error.
pub fn resume(options: &RunOptions) -> Result<RunSummary, TrainError> {
    let run_dir = &options.run_dir;
    let config_path = run_dir.join(files::CONFIG);
    if !config_path.exists() {
        return Err(TrainError::NothingToResume {
            dir: run_dir.clone(),
        });
    }
    let _lock = RunLock::acquire(run_dir)?;
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
    if config.batch_size > train_set.len() {
        return Err(TrainError::InvalidConfig(format!(
            "--batch-size {} is larger than the {} training images: lower it to at most {}",
            config.batch_size,
            train_set.len(),
            train_set.len()
        )));
    }
    // Built before the seeded model, so its random draws do not shift the training's.
    let esm_template = match config.track_esm {
        true => Some(config.network()?.init(&device)?),
        false => None,
    };
    let model = build_model(config, &device)?;
    if config.track_esm && crate::esm::batch_norm_states(&model).is_empty() {
        return Err(TrainError::InvalidConfig(format!(
            "--track-esm measures the BatchNorms of a model, and {} has none (every norm is \
             batch-free); train without --track-esm",
            config.model
        )));
    }
    let shape = train_set.image_shape();
    let needed = estimate_batch_bytes(&model, shape, config.batch_size, true);
    check_batch_memory(config.backend, needed, config.batch_size, "a training step")?;
    inference_batch_size(
        &model,
        config.backend,
        shape,
        config.batch_size,
        test_set.len(),
    )?;
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

    let interrupter = Interrupter::new();
    let guard = DivergenceGuard::new(interrupter.clone(), keep + 1, iters_per_epoch);
    let loader_train = train_loader(
        train_set,
        config.dataset,
        config.augmentation.clone(),
        config.batch_size,
        config.seed,
        Some(guard.watch()),
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
        .num_epochs(config.epochs)
        .with_interrupter(interrupter);
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
    // Instead of burn-train's full-screen dashboard, which clears itself at the end: lines
    // per epoch that stay, and a bar on a terminal.
    training = training.renderer(Box::new(LineRenderer::new()));
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    let result = training.launch(Learner::new(model, optim, scheduler));
    drop(result.renderer);
    if let Some(d) = guard.divergence() {
        let kept = match last_checkpoint(&run_dir.join(files::CHECKPOINTS)) {
            Some(epoch) => format!(
                "the checkpoint of epoch {epoch} is kept as it was ({}/model-{epoch}.bpk)",
                run_dir.join(files::CHECKPOINTS).display()
            ),
            None => "no epoch had finished, so there is no checkpoint to keep".to_string(),
        };
        let lr = config
            .schedule
            .lr(config.lr, d.epoch.saturating_sub(1), config.epochs);
        return Err(TrainError::Diverged {
            dir: run_dir.to_path_buf(),
            epoch: d.epoch,
            iteration: d.iteration,
            loss: d.loss,
            lr,
            kept,
            suggested: config.lr / 10.0,
        });
    }
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
/// `config.json`) on the test set of the run's dataset, in inference mode, with every
/// BatchNorm folded into its convolution ([`Network::fold_batch_norms`]).
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
    let config = load_run_config(run_dir)?;
    let device = config.backend.device()?;
    let model = config.network()?.init(&device)?;
    let weights = checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join(files::MODEL));
    // Inference only: BatchNorm folded into the convolutions (the same outputs, one pass
    // fewer per layer).
    let (model, _) = load_run_weights(model, run_dir, &weights)?
        .valid()
        .fold_batch_norms();
    let test_set = load_split(&config, Split::Test, locator)?;
    let batch_size = inference_batch_size(
        &model,
        config.backend,
        test_set.image_shape(),
        batch_size,
        test_set.len(),
    )?;
    evaluate(&model, test_set, config.dataset, batch_size, &device)
}

/// The configuration of the run in `run_dir`.
///
/// # Errors
/// [`TrainError::NotARun`] when it has no `config.json`; [`TrainError::Io`] when that
/// cannot be read (e.g. it is a directory); [`TrainError::BadConfigFile`].
pub fn load_run_config(run_dir: &Path) -> Result<TrainConfig, TrainError> {
    let config_path = run_dir.join(files::CONFIG);
    if !config_path.exists() {
        return Err(TrainError::NotARun {
            dir: run_dir.to_path_buf(),
        });
    }
    TrainConfig::load(&config_path)
}

/// Loads `weights` (a run's `model.safetensors`, a checkpoint of it, or any compatible
/// file) into `model`; a missing file of a run that is still training says so.
///
/// # Errors
/// The [`CheckpointError`](crate::checkpoint::CheckpointError) of
/// [`load_weights`](crate::checkpoint::load_weights), including non-finite weights.
pub fn load_run_weights(
    model: Network,
    run_dir: &Path,
    weights: &Path,
) -> Result<Network, TrainError> {
    use crate::checkpoint::{CheckpointError, HasFamily, LoadOptions, Naming, load_weights};
    let options = LoadOptions {
        family: Some(model.family()),
        naming: Naming::Auto,
        allow_partial: false,
    };
    match load_weights(model, weights, &options) {
        Ok((model, _)) => Ok(model),
        Err(CheckpointError::NotFound { path }) => match super::holder(run_dir) {
            Some(holder) => Err(TrainError::StillTraining {
                dir: run_dir.to_path_buf(),
                holder,
                missing: path,
            }),
            None => Err(CheckpointError::NotFound { path }.into()),
        },
        Err(e) => Err(e.into()),
    }
}

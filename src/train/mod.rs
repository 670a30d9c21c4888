//! Training and evaluation.
//!
//! - [`train`]: a run with burn-train's `Learner` (progress display, loss/accuracy/lr
//!   metrics, checkpoints every epoch, resume), writing a run directory
//!   (see [`files`]).
//! - [`evaluate`]: top-1 accuracy and loss in inference mode.
//! - [`Schedule`] / [`EpochLrScheduler`]: step, multistep and cosine schedules per epoch.
//! - [`ImageClassifier`] and [`impl_classifier_steps!`](crate::impl_classifier_steps):
//!   plug your own network into the trainer.

mod config;
mod evaluate;
mod guard;
mod lock;
mod memory;
mod metrics_csv;
mod renderer;
mod run;
mod schedule;
mod step;
mod track;

pub use config::TrainConfig;
pub use evaluate::{EvalResult, evaluate, evaluate_loader};
pub use guard::{Divergence, DivergenceGuard};
pub use lock::{LOCK_FILE, RunLock, holder};
pub use memory::{
    available_memory, check_batch_memory, estimate_batch_bytes, inference_batch_size,
};
pub use metrics_csv::{CSV_HEADER, EpochCsvLogger, EpochRow, read_metrics};
pub use renderer::LineRenderer;
pub use run::{
    RunOptions, RunSummary, build_model, evaluate_run, files, last_checkpoint, load_run_config,
    load_run_weights, load_split, resume, sgd, train,
};
pub use schedule::{EpochLrScheduler, Schedule};
pub use step::{ImageClassifier, classification_output};
pub use track::{
    ESM_CSV_HEADER, EsmEpochRow, EsmTracker, plot_over_epochs, read_esm_epochs, write_esm_epochs,
};

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::models::ModelError;

/// Errors raised by training and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The asked-for backend is not compiled into this build.
    #[error(
        "backend {backend} is not compiled into this build of xbn: rebuild with `--features {feature}`"
    )]
    BackendNotCompiled {
        /// Backend name.
        backend: String,
        /// Cargo feature that enables it.
        feature: &'static str,
    },
    /// A training setting is out of range.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    /// The run directory already holds a run.
    #[error("{dir} already holds a run; pass --resume to continue it, or choose another --output")]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// Another process is writing the run directory.
    #[error(
        "{dir} is being written by another xbn run ({holder}); wait for it to finish, or choose another --output",
        dir = .dir.display()
    )]
    RunLocked {
        /// The run directory.
        dir: PathBuf,
        /// Who holds the lock (process id and start time).
        holder: String,
    },
    /// A batch that needs more memory than the machine has.
    #[error(
        "batch size {batch_size} needs about {needed_gib:.1} GiB of memory for {what} (estimate), \
         but {available_gib:.1} GiB are available; lower --batch-size"
    )]
    BatchTooLarge {
        /// The batch size.
        batch_size: usize,
        /// What the batch is for.
        what: &'static str,
        /// Estimated need, GiB.
        needed_gib: f64,
        /// Available memory, GiB.
        available_gib: f64,
    },
    /// The training loss stopped being finite.
    #[error(
        "training diverged: the loss became {loss} at epoch {epoch}, step {iteration} \
         (learning rate {lr}); {kept}. Start a new run with a lower --lr (e.g. {suggested}, 10× lower)"
    )]
    Diverged {
        /// The run directory.
        dir: PathBuf,
        /// Epoch of the first non-finite loss (from 1).
        epoch: usize,
        /// Step within that epoch (from 1).
        iteration: usize,
        /// The loss value.
        loss: f64,
        /// The learning rate of that epoch.
        lr: f64,
        /// What was kept of the run.
        kept: String,
        /// A learning rate 10× lower.
        suggested: f64,
    },
    /// `--resume` on a directory without a run.
    #[error("nothing to resume in {dir}: it has no config.json (start the run without --resume)")]
    NothingToResume {
        /// The directory.
        dir: PathBuf,
    },
    /// A directory that is not a run directory.
    #[error(
        "{dir} is not an xbn run directory (no config.json); pass the --output folder of `xbn train`"
    )]
    NotARun {
        /// The directory.
        dir: PathBuf,
    },
    /// The weights of a run that is still training are not written yet.
    #[error(
        "{missing} does not exist yet: {dir} is still being trained ({holder}); score one of \
         its finished epochs with --checkpoint {dir}/checkpoint/model-N.bpk, or wait for the run to end",
        missing = .missing.display(),
        dir = .dir.display()
    )]
    StillTraining {
        /// The run directory.
        dir: PathBuf,
        /// Who trains it.
        holder: String,
        /// The weights file asked for.
        missing: PathBuf,
    },
    /// A `config.json` that cannot be parsed.
    #[error("{path}: not a valid xbn run configuration ({reason})")]
    BadConfigFile {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A file of the run directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A batch could not be loaded.
    #[error("loading a batch failed: {0}")]
    Batch(String),
    /// burn-train reported an error.
    #[error("training failed: {0}")]
    Learner(String),
    /// Training was stopped before its last epoch.
    #[error("training was interrupted; continue it with `xbn train --resume --output {dir}`", dir = .dir.display())]
    Interrupted {
        /// The run directory.
        dir: PathBuf,
    },
    /// The model could not be built or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The data could not be found or read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// [`crate::fsutil::write_atomic`] with the error naming `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::fsutil::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

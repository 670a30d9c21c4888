//! The configuration of a training run, written to the run's `config.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Schedule, TrainError};
use crate::blocks::{Placement, ShortcutKind};
use crate::data::{Augmentation, DatasetKind};
use crate::device::BackendKind;
use crate::models::{ModelError, ModelName, NetworkConfig};
use crate::norm::NormConfig;

/// Everything that defines a training run. `config.json` in the run directory holds it,
/// so `xbn train --resume` and `xbn eval` rebuild exactly the same model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset.
    pub dataset: DatasetKind,
    /// Architecture and norm placement (`resnet20-xbn-p2`).
    pub model: ModelName,
    /// The batch-free norm of the XBN placements (ignored by `bn`).
    pub bfn: NormConfig,
    /// Shortcut option of a ResNet (`None`: the architecture's own).
    #[serde(default)]
    pub shortcut: Option<ShortcutKind>,
    /// Number of epochs.
    pub epochs: usize,
    /// Mini-batch size (also the BatchNorm batch).
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (PyTorch semantics: dampening 0, no Nesterov).
    pub momentum: f64,
    /// L2 weight decay, applied to every parameter as PyTorch's SGD `weight_decay` (the
    /// authors' recipe applies it to norm parameters too).
    pub weight_decay: f64,
    /// Learning-rate schedule, per epoch.
    pub schedule: Schedule,
    /// Seed of the weights, the shuffling and the augmentation (and of dropout).
    ///
    /// Burn's random generator is process-wide (like `torch.manual_seed`): a run is
    /// reproducible when nothing else in the process draws random numbers while it runs.
    pub seed: u64,
    /// Training augmentation (`None`: none).
    pub augmentation: Option<Augmentation>,
    /// Use only the first `n` training images (quick runs).
    pub train_limit: Option<usize>,
    /// Use only the first `n` test images (quick runs).
    pub test_limit: Option<usize>,
    /// Backend.
    pub backend: BackendKind,
    /// The `--data-dir` the run was started with, reused by a resume, `xbn eval` or
    /// `xbn esm --run` that gives none.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Measure the ESM of every BatchNorm on the test set after each epoch
    /// (`esm_epochs.csv`, `esm/epoch-N.json`, plots over epochs).
    #[serde(default)]
    pub track_esm: bool,
}

impl TrainConfig {
    /// A configuration with xbn's defaults: the architecture's default batch-free norm
    /// ([`Arch::default_bfn`](crate::models::Arch::default_bfn)), 3 epochs, batch 128,
    /// lr 0.1, momentum 0.9, weight decay 1e-4, cosine schedule over the run's epochs,
    /// seed 0, the dataset's standard augmentation, flex backend.
    pub fn new(dataset: DatasetKind, model: ModelName) -> Self {
        Self {
            dataset,
            model,
            bfn: model.arch.default_bfn(model.placement),
            shortcut: None,
            epochs: 3,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            seed: 0,
            augmentation: Some(Augmentation::standard(dataset)),
            train_limit: None,
            test_limit: None,
            backend: BackendKind::Flex,
            data_dir: None,
            track_esm: false,
        }
    }

    /// Sets the batch-free norm.
    pub fn with_bfn(mut self, bfn: NormConfig) -> Self {
        self.bfn = bfn;
        self
    }

    /// Sets the shortcut option of a ResNet.
    pub fn with_shortcut(mut self, shortcut: ShortcutKind) -> Self {
        self.shortcut = Some(shortcut);
        self
    }

    /// The network to train: the model's configuration with this run's batch-free norm,
    /// the dataset's channels and classes, and the shortcut option.
    ///
    /// # Errors
    /// [`ModelError`] when the name, placement or shortcut does not fit the architecture.
    pub fn network(&self) -> Result<NetworkConfig, ModelError> {
        let [channels, _, _] = self.dataset.image_shape();
        let mut network = self
            .model
            .config_with_bfn(self.bfn.clone())?
            .with_in_channels(channels)
            .with_num_classes(self.dataset.num_classes());
        if let Some(shortcut) = self.shortcut {
            match &mut network {
                NetworkConfig::ResNet(c) => c.shortcut = shortcut,
                _ => {
                    return Err(ModelError::InvalidConfig(format!(
                        "{} has no shortcut option",
                        self.model
                    )));
                }
            }
        }
        Ok(network)
    }

    /// Checks the values a user can get wrong (the network itself is checked when it is
    /// built, see [`TrainConfig::network`]).
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] saying which value is out of range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(format!(
                "batch size {} is too small: BatchNorm needs more than one value per channel in training",
                self.batch_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate must be > 0, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        let gamma_ok = |g: f64| g.is_finite() && g > 0.0;
        match &self.schedule {
            Schedule::Constant => {}
            Schedule::Step { step_size, gamma } => {
                if *step_size == 0 || !gamma_ok(*gamma) {
                    return bad(format!(
                        "step schedule needs step_size >= 1 and gamma > 0, got {step_size} and {gamma}"
                    ));
                }
            }
            Schedule::MultiStep { gamma, .. } => {
                if !gamma_ok(*gamma) {
                    return bad(format!("multistep schedule needs gamma > 0, got {gamma}"));
                }
            }
            Schedule::Cosine { t_max, eta_min } => {
                if *t_max == Some(0) || !(eta_min.is_finite() && (0.0..=self.lr).contains(eta_min))
                {
                    return bad(format!(
                        "cosine schedule needs t_max >= 1 and 0 <= eta_min <= lr, got {t_max:?} and {eta_min}"
                    ));
                }
            }
        }
        // A plain-BN model ignores `bfn` (the configuration always holds one).
        if self.model.placement != Placement::Bn
            && let Err(e) = self.model.check_bfn(&self.bfn)
        {
            return bad(match e {
                ModelError::InvalidConfig(reason) => reason,
                e => e.to_string(),
            });
        }
        if matches!(self.train_limit, Some(n) if n < self.batch_size) {
            return bad(format!(
                "--train-limit {} is smaller than one batch (--batch-size {}): raise it or lower the batch size",
                self.train_limit.unwrap_or(0),
                self.batch_size
            ));
        }
        if self.test_limit == Some(0) {
            return bad("--test-limit must be at least 1".into());
        }
        Ok(())
    }

    /// Writes the configuration as pretty JSON, through a temporary file and a rename.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let json = serde_json::to_string_pretty(self).expect("config serialises");
        super::write_atomic(path, json.as_bytes())
    }

    /// Reads a configuration written by [`TrainConfig::save`].
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be read, [`TrainError::BadConfigFile`] when
    /// it is not a valid configuration.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::BadConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

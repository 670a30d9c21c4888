//! The configuration of a training run, written to the run's `config.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Schedule, TrainError};
use crate::blocks::{NormPlan, Placement, ShortcutKind};
use crate::data::{Augmentation, DatasetKind};
use crate::device::BackendKind;
use crate::models::{ModelError, ModelName, ResNetConfig};
use crate::norm::NormConfig;

/// Everything that defines a training run. `config.json` in the run directory holds it,
/// so `xbn train --resume` and `xbn eval` rebuild exactly the same model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset.
    pub dataset: DatasetKind,
    /// Architecture name (`resnet20`).
    pub model_name: ModelName,
    /// Where the batch-free norm goes.
    pub placement: Placement,
    /// The batch-free norm of the XBN placements.
    pub bfn: NormConfig,
    /// The resolved network configuration (channels and classes of the dataset, norm plan).
    pub model: ResNetConfig,
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
    /// Seed of the weights, the shuffling and the augmentation.
    pub seed: u64,
    /// Training augmentation (`None`: none).
    pub augmentation: Option<Augmentation>,
    /// Use only the first `n` training images (quick runs).
    pub train_limit: Option<usize>,
    /// Use only the first `n` test images (quick runs).
    pub test_limit: Option<usize>,
    /// Backend.
    pub backend: BackendKind,
    /// The `--data-dir` the run was started with, reused by a resume that gives none.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

impl TrainConfig {
    /// A configuration with xbn's defaults: 3 epochs, batch 128, lr 0.1, momentum 0.9,
    /// weight decay 1e-4, cosine schedule over the run's epochs, seed 0, the dataset's standard
    /// augmentation, flex backend. The model gets the dataset's channels and classes and
    /// the norm plan of `placement` with `bfn`.
    ///
    /// # Errors
    /// [`ModelError::InvalidDepth`] for an invalid CIFAR ResNet depth.
    pub fn new(
        dataset: DatasetKind,
        model_name: ModelName,
        placement: Placement,
        bfn: NormConfig,
    ) -> Result<Self, ModelError> {
        let epochs = 3;
        let [channels, _, _] = dataset.image_shape();
        let model = model_name
            .config()?
            .with_in_channels(channels)
            .with_num_classes(dataset.num_classes())
            .with_norm_plan(NormPlan::new(placement, bfn.clone()));
        Ok(Self {
            dataset,
            model_name,
            placement,
            bfn,
            model,
            epochs,
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
        })
    }

    /// Sets the shortcut option of the model.
    pub fn with_shortcut(mut self, shortcut: ShortcutKind) -> Self {
        self.model.shortcut = shortcut;
        self
    }

    /// Checks the values a user can get wrong.
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
        if self.placement != Placement::Bn && !self.bfn.is_batch_free() {
            return bad(format!(
                "the {} placement needs a batch-free norm (gn[:G], ln, in or none), got --bfn {}",
                self.placement, self.bfn
            ));
        }
        if self.model.norm_plan != NormPlan::new(self.placement, self.bfn.clone()) {
            return bad(
                "model.norm_plan does not match placement and bfn (edited config.json?)".into(),
            );
        }
        let [c, _, _] = self.dataset.image_shape();
        if self.model.in_channels != c || self.model.num_classes != self.dataset.num_classes() {
            return bad(format!(
                "the model takes {} channels and {} classes, {} has {c} and {}",
                self.model.in_channels,
                self.model.num_classes,
                self.dataset,
                self.dataset.num_classes()
            ));
        }
        if matches!(self.train_limit, Some(n) if n < self.batch_size) {
            return bad("train_limit must be at least one batch".into());
        }
        if self.test_limit == Some(0) {
            return bad("test_limit must be at least 1".into());
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

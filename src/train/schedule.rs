//! Per-epoch learning-rate schedules, as PyTorch's `StepLR`, `MultiStepLR` and
//! `CosineAnnealingLR` stepped once per epoch.

use std::f64::consts::PI;

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::LearningRate;
use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch (epochs counted from 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `lr · gamma^⌊e / step_size⌋` (`torch.optim.lr_scheduler.StepLR`; the authors' ImageNet
    /// recipe is step 30, gamma 0.1).
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// `lr · gamma^(number of milestones ≤ e)` (`MultiStepLR`; He et al.'s CIFAR recipe
    /// divides by 10 at 50 % and 75 % of training).
    MultiStep {
        /// Epochs at which the rate is multiplied by `gamma`.
        milestones: Vec<usize>,
        /// Decay factor.
        gamma: f64,
    },
    /// `eta_min + (lr − eta_min) · (1 + cos(π e / t_max)) / 2` (`CosineAnnealingLR`).
    Cosine {
        /// Half-period in epochs; `None` = the run's number of epochs.
        #[serde(default)]
        t_max: Option<usize>,
        /// Final rate.
        eta_min: f64,
    },
}

impl Schedule {
    /// Learning rate of epoch `epoch` (0-based) for base rate `base_lr` in a run of
    /// `epochs` epochs.
    pub fn lr(&self, base_lr: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                base_lr * gamma.powi((epoch / (*step_size).max(1)) as i32)
            }
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= epoch).count();
                base_lr * gamma.powi(passed as i32)
            }
            Schedule::Cosine { t_max, eta_min } => {
                let t = t_max.unwrap_or(epochs).max(1) as f64;
                eta_min + (base_lr - eta_min) * (1.0 + (PI * epoch as f64 / t).cos()) / 2.0
            }
        }
    }
}

/// A Burn [`LrScheduler`] that applies a per-epoch [`Schedule`]. Burn's `Learner` steps a
/// scheduler once per iteration; this one counts iterations and changes the rate every
/// `iters_per_epoch` steps. Its state (the iteration count) is saved in the training
/// checkpoints, so a resumed run continues the schedule where it stopped.
#[derive(Clone, Debug)]
pub struct EpochLrScheduler {
    base_lr: f64,
    schedule: Schedule,
    epochs: usize,
    iters_per_epoch: usize,
    iteration: usize,
}

impl EpochLrScheduler {
    /// A scheduler for a run of `epochs` epochs of `iters_per_epoch` optimizer steps.
    pub fn new(base_lr: f64, schedule: Schedule, epochs: usize, iters_per_epoch: usize) -> Self {
        Self {
            base_lr,
            schedule,
            epochs,
            iters_per_epoch: iters_per_epoch.max(1),
            iteration: 0,
        }
    }
}

impl LrScheduler for EpochLrScheduler {
    fn step(&mut self) -> LearningRate {
        let epoch = self.iteration / self.iters_per_epoch;
        self.iteration += 1;
        self.schedule.lr(self.base_lr, epoch, self.epochs)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("iteration", self.iteration as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(iteration) = record.scalar::<u64>("iteration") {
            self.iteration = iteration as usize;
        }
    }
}

//! Stopping a run at the first training step whose loss is not finite.
//!
//! A learning rate that is too large makes the loss overflow to infinity or NaN within a
//! few steps, after which every weight becomes NaN and nothing more can be learnt. The
//! guard reads the loss of every training step (one scalar read per step; burn-train's
//! loss metric reads it too) and, at the first non-finite value, records where it happened
//! and asks burn-train to stop. The stop takes effect before the epoch's checkpoint is
//! written, so the checkpoints of the finished epochs stay as they were.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::tensor::Tensor;
use burn::train::Interrupter;

use crate::data::LossWatch;

/// Where a run's training loss stopped being finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Training step within the epoch (from 1).
    pub iteration: usize,
    /// The loss value (NaN or ±infinity).
    pub loss: f64,
}

/// Watches the training loss of a run (see the module documentation).
#[derive(Clone)]
pub struct DivergenceGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DivergenceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DivergenceGuard")
            .field("divergence", &self.divergence())
            .finish()
    }
}

struct Inner {
    interrupter: Interrupter,
    first_epoch: usize,
    iters_per_epoch: usize,
    steps: AtomicUsize,
    found: Mutex<Option<Divergence>>,
}

impl DivergenceGuard {
    /// A guard for a run that starts at epoch `first_epoch` (from 1) with
    /// `iters_per_epoch` steps per epoch, stopping it through `interrupter`.
    pub fn new(interrupter: Interrupter, first_epoch: usize, iters_per_epoch: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                interrupter,
                first_epoch,
                iters_per_epoch: iters_per_epoch.max(1),
                steps: AtomicUsize::new(0),
                found: Mutex::new(None),
            }),
        }
    }

    /// Records the loss `[1]` (or `[N]`: any element) of the next training step; at the
    /// first non-finite value, remembers it and stops the run.
    pub fn check(&self, loss: &Tensor<1>) {
        let step = self.inner.steps.fetch_add(1, Ordering::SeqCst);
        let values = loss.clone().into_data().convert::<f64>();
        let Some(bad) = values.iter::<f64>().find(|v| !v.is_finite()) else {
            return;
        };
        let mut found = self.inner.found.lock().unwrap_or_else(|p| p.into_inner());
        if found.is_none() {
            *found = Some(Divergence {
                epoch: self.inner.first_epoch + step / self.inner.iters_per_epoch,
                iteration: step % self.inner.iters_per_epoch + 1,
                loss: bad,
            });
            self.inner
                .interrupter
                .stop(Some("the training loss is not finite"));
        }
    }

    /// The first non-finite loss seen, if any.
    pub fn divergence(&self) -> Option<Divergence> {
        self.inner
            .found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The [`LossWatch`] that feeds this guard (attach it to the training batches).
    pub fn watch(&self) -> LossWatch {
        let guard = self.clone();
        LossWatch::new(move |loss| guard.check(loss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_finite_loss_is_located_and_stops_the_run() {
        let device = burn::tensor::Device::flex();
        let interrupter = Interrupter::new();
        // A run resumed at epoch 3, 4 steps per epoch.
        let guard = DivergenceGuard::new(interrupter.clone(), 3, 4);
        let loss = |v: f32| Tensor::<1>::from_floats([v], &device);
        for _ in 0..5 {
            guard.check(&loss(2.3));
        }
        assert!(guard.divergence().is_none());
        assert!(!interrupter.should_stop());
        guard.watch().observe(&loss(f32::INFINITY));
        guard.check(&loss(f32::NAN));
        assert_eq!(
            guard.divergence(),
            Some(Divergence {
                epoch: 4,
                iteration: 2,
                loss: f64::INFINITY
            })
        );
        assert!(interrupter.should_stop());
    }
}

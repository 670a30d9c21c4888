//! The recorder BatchNorm layers report their inputs to while an ESM pass runs.
//!
//! Burn has no forward hooks. Instead, [`BatchNorm::try_forward`](crate::norm::BatchNorm)
//! calls [`observe`] with its input; when no recording is active on the current thread
//! that is one thread-local check and nothing else. A recording is active only on the
//! thread that runs the measuring pass, so a model training on another thread is never
//! observed. Layers are identified by the parameter id of their `running_mean`, which a
//! module visitor maps back to the layer's path.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId, RunningState};
use burn::tensor::Tensor;

use super::stats::ChannelStats;

/// Statistics gathered by one recording, per layer.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    /// Per `running_mean` id: order of the first observation, and the statistics.
    pub layers: HashMap<ParamId, (usize, ChannelStats)>,
    /// Failures (e.g. a tensor that could not be read back).
    pub errors: Vec<String>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

/// Starts recording on this thread; the recording ends when the guard is finished or
/// dropped (also on panic).
pub(crate) struct RecordingGuard {
    finished: bool,
}

impl RecordingGuard {
    pub(crate) fn start() -> Self {
        ACTIVE.with(|a| *a.borrow_mut() = Some(Recording::default()));
        Self { finished: false }
    }

    /// Ends the recording and returns what it gathered.
    pub(crate) fn finish(mut self) -> Recording {
        self.finished = true;
        ACTIVE.with(|a| a.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for RecordingGuard {
    fn drop(&mut self) {
        if !self.finished {
            ACTIVE.with(|a| a.borrow_mut().take());
        }
    }
}

struct IdOf(Option<ParamId>);

impl ModuleVisitor for IdOf {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 = Some(param.id);
    }
}

/// The parameter id of a running-statistics buffer.
pub(crate) fn id_of(state: &RunningState<Tensor<1>>) -> ParamId {
    let mut v = IdOf(None);
    state.visit(&mut v);
    v.0.expect("a running state visits one tensor")
}

fn to_f64(t: Tensor<1>) -> Result<Vec<f64>, String> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .map_err(|e| format!("{e:?}"))
}

/// Records the per-channel statistics of a BatchNorm input `[N, C, ...]` when a recording
/// is active on this thread.
pub(crate) fn observe<const D: usize>(running_mean: &RunningState<Tensor<1>>, input: &Tensor<D>) {
    if !ACTIVE.with(|a| a.borrow().is_some()) {
        return;
    }
    let dims = input.dims();
    let channels = dims[1];
    let count = (dims.iter().product::<usize>() / channels.max(1)) as f64;
    // Per-(sample, channel) mean and biased variance over the spatial positions, computed
    // on the device with a reduction along the innermost axis; the N groups of each channel
    // are merged on the host in f64 (Chan's update).
    let n = dims[0];
    let per_group = count / n.max(1) as f64;
    let x = input
        .clone()
        .detach()
        .reshape([n as i64, channels as i64, -1]);
    let (var, mean) = x.var_mean_bias(2);
    let mean = to_f64(mean.reshape([n * channels]));
    let var = to_f64(var.reshape([n * channels]));
    let id = id_of(running_mean);
    ACTIVE.with(|a| {
        let mut guard = a.borrow_mut();
        let Some(rec) = guard.as_mut() else { return };
        match (mean, var) {
            (Ok(mean), Ok(var)) => {
                let order = rec.layers.len();
                let entry = rec
                    .layers
                    .entry(id)
                    .or_insert_with(|| (order, ChannelStats::default()));
                for sample in 0..n {
                    let range = sample * channels..(sample + 1) * channels;
                    let m2: Vec<f64> = var[range.clone()].iter().map(|v| v * per_group).collect();
                    entry.1.merge(per_group, &mean[range], &m2);
                }
            }
            (Err(e), _) | (_, Err(e)) => rec.errors.push(e),
        }
    });
}

//! The recorder BatchNorm layers report their inputs to while an ESM pass runs.
//!
//! Burn has no forward hooks. Instead, [`BatchNorm::try_forward`](crate::norm::BatchNorm)
//! calls [`observe`] with its input; when no recording is active on the current thread
//! that is one thread-local check and nothing else. A recording is active only on the
//! thread that runs the measuring pass: a model training on another thread is never
//! observed, and neither are BatchNorms that the measured forward function runs on other
//! threads (a data-parallel forward is not supported). Layers are identified by the
//! parameter id of their `running_mean`, which a module visitor maps back to the layer's
//! path.
//!
//! Per batch, each layer's input `[N, C, ...]` is reduced on the device to the mean and
//! biased variance of every (sample, channel) pair over the remaining axes; those are read
//! back in groups (one device synchronisation per [`FLUSH_EVERY`] observations) and merged
//! on the host in f64 with Chan's parallel update.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId, RunningState};
use burn::tensor::Tensor;

use super::stats::ChannelStats;

/// Observations kept on the device before they are read back together.
pub const FLUSH_EVERY: usize = 64;

/// One layer input waiting to be read back: per (sample, channel) mean and biased
/// variance `[N·C]`, and the values per (sample, channel).
struct Pending {
    id: ParamId,
    samples: usize,
    channels: usize,
    per_group: f64,
    mean: Tensor<1>,
    var: Tensor<1>,
}

/// Statistics gathered by one recording, per layer.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    /// Per `running_mean` id: order of the first observation, and the statistics.
    pub layers: HashMap<ParamId, (usize, ChannelStats)>,
    /// Failures (e.g. a tensor that could not be read back).
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Active {
    recording: Recording,
    pending: Vec<Pending>,
    order: HashMap<ParamId, usize>,
}

impl Active {
    fn flush(&mut self) {
        for p in self.pending.drain(..) {
            let (mean, var) = match (to_f64(p.mean), to_f64(p.var)) {
                (Ok(m), Ok(v)) => (m, v),
                (Err(e), _) | (_, Err(e)) => {
                    self.recording.errors.push(e);
                    continue;
                }
            };
            let order = self.order[&p.id];
            let entry = self
                .recording
                .layers
                .entry(p.id)
                .or_insert_with(|| (order, ChannelStats::default()));
            for sample in 0..p.samples {
                let range = sample * p.channels..(sample + 1) * p.channels;
                let m2: Vec<f64> = var[range.clone()].iter().map(|v| v * p.per_group).collect();
                entry.1.merge(p.per_group, &mean[range], &m2);
            }
        }
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Starts recording on this thread; the recording ends when the guard is finished or
/// dropped (also on panic).
pub(crate) struct RecordingGuard {
    finished: bool,
}

impl RecordingGuard {
    /// Starts a recording, or returns `None` when one is already active on this thread
    /// (recordings do not nest).
    pub(crate) fn start() -> Option<Self> {
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            if a.is_some() {
                return None;
            }
            *a = Some(Active::default());
            Some(Self { finished: false })
        })
    }

    /// Ends the recording and returns what it gathered.
    pub(crate) fn finish(mut self) -> Recording {
        self.finished = true;
        ACTIVE
            .with(|a| a.borrow_mut().take())
            .map_or_else(Recording::default, |mut active| {
                active.flush();
                active.recording
            })
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
    let (samples, channels) = (dims[0], dims[1]);
    let per_group: usize = dims[2..].iter().product();
    if samples == 0 || channels == 0 {
        return;
    }
    let x = input
        .clone()
        .detach()
        .reshape([samples, channels, per_group.max(1)]);
    let (var, mean) = x.var_mean_bias(2);
    let pending = Pending {
        id: id_of(running_mean),
        samples,
        channels,
        per_group: per_group.max(1) as f64,
        mean: mean.reshape([samples * channels]),
        var: var.reshape([samples * channels]),
    };
    ACTIVE.with(|a| {
        let mut guard = a.borrow_mut();
        let Some(active) = guard.as_mut() else { return };
        let next = active.order.len();
        active.order.entry(pending.id).or_insert(next);
        active.pending.push(pending);
        if active.pending.len() >= FLUSH_EVERY {
            active.flush();
        }
    });
}

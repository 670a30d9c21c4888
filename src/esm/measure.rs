//! Measuring the estimation shift of every BatchNorm of a model.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::EsmError;
use super::record::RecordingGuard;
use super::stats::ChannelStats;
use crate::models::tensor_entries;

/// The running estimates of one BatchNorm, found by module path.
#[derive(Clone, Debug)]
pub struct BatchNormState {
    /// Module path of the layer (`layer2.1.bn1`).
    pub path: String,
    /// Burn id of its `running_mean` (how recorded statistics are matched to it).
    pub mean_id: ParamId,
    /// Burn id of its `running_var`.
    pub var_id: ParamId,
    /// `running_mean` `[C]`.
    pub running_mean: Vec<f64>,
    /// `running_var` `[C]` (PyTorch's convention: updated with the unbiased batch variance).
    pub running_var: Vec<f64>,
    /// `num_batches_tracked`: training steps the layer has seen (0: never trained).
    pub num_batches_tracked: f64,
}

fn values(t: Tensor<1>) -> Vec<f64> {
    // A float tensor always converts to f64; an unreadable one yields no values, which
    // makes its layer's ESM NaN (see `l2`) rather than stopping the measurement.
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .unwrap_or_default()
}

struct ValueOf<'a> {
    ids: &'a HashMap<ParamId, usize>,
    out: Vec<Vec<f64>>,
}

impl burn::module::ModuleVisitor for ValueOf<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&i) = self.ids.get(&param.id) {
            self.out[i] = values(param.val().reshape([-1]));
        }
    }
}

/// Every BatchNorm with running statistics in `model`, in module order, with its
/// running estimates. Works for any module built from xbn's norms.
///
/// The values are current in either mode: xbn's BatchNorm commits its running estimates
/// at every training step (see [`BatchNorm`](crate::norm::BatchNorm)), so a model that is
/// still training needs no [`Module::valid`] first.
pub fn batch_norm_states<M: Module>(model: &M) -> Vec<BatchNormState> {
    let entries = tensor_entries(model);
    let by_path: HashMap<&str, &crate::models::TensorEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let layers: Vec<(String, ParamId, ParamId, Option<ParamId>)> = entries
        .iter()
        .filter_map(|e| {
            let prefix = e.path.strip_suffix(".running_mean")?;
            let var = by_path.get(format!("{prefix}.running_var").as_str())?;
            let nbt = by_path.get(format!("{prefix}.num_batches_tracked").as_str());
            Some((prefix.to_string(), e.id, var.id, nbt.map(|n| n.id)))
        })
        .collect();
    let mut ids = HashMap::new();
    for (i, (_, m, v, n)) in layers.iter().enumerate() {
        ids.insert(*m, 3 * i);
        ids.insert(*v, 3 * i + 1);
        if let Some(n) = n {
            ids.insert(*n, 3 * i + 2);
        }
    }
    let mut visitor = ValueOf {
        ids: &ids,
        out: vec![Vec::new(); 3 * layers.len()],
    };
    model.visit(&mut visitor);
    layers
        .into_iter()
        .enumerate()
        .map(|(i, (path, mean_id, var_id, _))| BatchNormState {
            path,
            mean_id,
            var_id,
            running_mean: std::mem::take(&mut visitor.out[3 * i]),
            running_var: std::mem::take(&mut visitor.out[3 * i + 1]),
            num_batches_tracked: visitor.out[3 * i + 2].first().copied().unwrap_or(f64::NAN),
        })
        .collect()
}

/// The estimation shift of one BatchNorm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsmLayer {
    /// Position among the model's BatchNorms in forward order, from 1.
    pub depth: usize,
    /// Module path (`layer2.1.bn1`).
    pub path: String,
    /// Channels `C`.
    pub channels: usize,
    /// **The paper's ξ_μ**: `‖running_mean − E[x]‖₂` over the `C` channels.
    pub esm_mean: f64,
    /// **The paper's ξ_σ²**: `‖running_var − Var[x]‖₂`, `Var` the population variance.
    pub esm_var: f64,
    /// `esm_mean / sqrt(C)` (root-mean-square shift per channel; not the paper's).
    pub esm_mean_per_sqrt_c: f64,
    /// `esm_var / sqrt(C)` (not the paper's).
    pub esm_var_per_sqrt_c: f64,
    /// Expected statistics: mean of the layer's input over the data, per channel.
    pub expected_mean: Vec<f64>,
    /// Expected statistics: population variance of the layer's input, per channel.
    pub expected_var: Vec<f64>,
    /// The layer's `running_mean`.
    pub running_mean: Vec<f64>,
    /// The layer's `running_var`.
    pub running_var: Vec<f64>,
}

/// The estimation shift of every BatchNorm of a model on a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsmReport {
    /// One entry per BatchNorm that saw data, in forward order.
    pub layers: Vec<EsmLayer>,
    /// Values per channel seen by the first layer (`N·H·W` summed over the data).
    pub values_per_channel: f64,
    /// BatchNorms that never trained (`num_batches_tracked = 0` and running statistics at
    /// their initial values, mean 0 and variance 1). In a training loop of your own this means the batches were
    /// not on an autodiff device, or the model was switched with `valid()`: a BatchNorm
    /// trains only then (Burn's rule), and otherwise silently normalises with its initial
    /// statistics.
    #[serde(default)]
    pub untrained: Vec<String>,
}

/// `‖a − b‖₂`; NaN when the lengths differ (a statistic that could not be read).
fn l2(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Measures the estimation shift magnitude (paper §4.1) of every BatchNorm of `model`:
/// runs `forward(model, batch)` on every batch **in inference mode** (on a
/// [`Module::valid`] copy: BatchNorms normalise with their running estimates, and the
/// model passed in is not changed), accumulates the mean and population variance of each
/// BatchNorm's *input* per channel over all batches (streaming, f64, Chan's parallel
/// update: no activation is kept), and compares them with the layer's running estimates.
///
/// Works for any model built from xbn's [`BatchNorm`](crate::norm::BatchNorm), with no
/// per-model code: the layers report their inputs to a recorder active on this thread
/// only. `batches` are whatever `forward` takes; put them on a plain (non-autodiff) device.
///
/// # Errors
/// [`EsmError::NoBatchNorm`] when the model has no BatchNorm with running statistics,
/// [`EsmError::NotObserved`] when no BatchNorm saw any input (e.g. no batch),
/// [`EsmError::Read`] when statistics could not be read back from the device, and
/// [`EsmError::Nested`] when called from inside another measurement's forward function.
pub fn measure<M, I, X, F, O>(model: &M, batches: I, mut forward: F) -> Result<EsmReport, EsmError>
where
    M: Module,
    I: IntoIterator<Item = X>,
    F: FnMut(&M, X) -> O,
{
    let model = model.valid();
    let states = batch_norm_states(&model);
    if states.is_empty() {
        return Err(EsmError::NoBatchNorm);
    }
    let guard = RecordingGuard::start().ok_or(EsmError::Nested)?;
    for batch in batches {
        let _ = forward(&model, batch);
    }
    let recording = guard.finish();
    if let Some(e) = recording.errors.first() {
        return Err(EsmError::Read(e.clone()));
    }
    // A counter of 0 alone is not enough: checkpoints from before PyTorch 0.4.1 have none.
    let untrained = states
        .iter()
        .filter(|s| {
            s.num_batches_tracked == 0.0
                && s.running_mean.iter().all(|&v| v == 0.0)
                && s.running_var.iter().all(|&v| v == 1.0)
        })
        .map(|s| s.path.clone())
        .collect();
    let mut layers: Vec<(usize, EsmLayer)> = Vec::new();
    for state in states {
        let Some((order, stats)) = recording.layers.get(&state.mean_id) else {
            continue;
        };
        layers.push((*order, layer_report(state, stats)));
    }
    if layers.is_empty() {
        return Err(EsmError::NotObserved);
    }
    layers.sort_by_key(|(order, _)| *order);
    let values_per_channel = recording
        .layers
        .values()
        .find(|(order, _)| *order == 0)
        .map(|(_, s)| s.count)
        .unwrap_or(0.0);
    Ok(EsmReport {
        layers: layers
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut l))| {
                l.depth = i + 1;
                l
            })
            .collect(),
        values_per_channel,
        untrained,
    })
}

fn layer_report(state: BatchNormState, stats: &ChannelStats) -> EsmLayer {
    let expected_var = stats.variance();
    let esm_mean = l2(&state.running_mean, &stats.mean);
    let esm_var = l2(&state.running_var, &expected_var);
    let root_c = (stats.channels().max(1) as f64).sqrt();
    EsmLayer {
        depth: 0,
        path: state.path,
        channels: stats.channels(),
        esm_mean,
        esm_var,
        esm_mean_per_sqrt_c: esm_mean / root_c,
        esm_var_per_sqrt_c: esm_var / root_c,
        expected_mean: stats.mean.clone(),
        expected_var,
        running_mean: state.running_mean,
        running_var: state.running_var,
    }
}

struct SetValues<'a> {
    values: &'a HashMap<ParamId, Vec<f64>>,
}

impl ModuleMapper for SetValues<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(v) = self.values.get(&param.id) else {
            return param;
        };
        let (id, tensor, _) = param.consume();
        let device = tensor.device();
        let shape = tensor.shape();
        let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Param::initialized(id, Tensor::from_data(TensorData::new(data, shape), &device))
    }
}

/// Sets the running estimates of the BatchNorms named in `layers` (by module path) to
/// their expected statistics (`expected_mean`, `expected_var`): after this, those layers
/// have ESM 0 *on the data they were measured on, given the upstream layers as they were
/// then*. Layers not in the report keep their values.
///
/// Returns a copy of the model in inference mode ([`Module::valid`]), with running
/// statistics of its own: `model` and its clones (which share Burn's running-state cells)
/// are not changed. Call [`Module::train`] on the result to continue training it.
///
/// # Errors
/// [`EsmError::UnknownLayer`] when the report names a path that is not a BatchNorm of the
/// model, [`EsmError::ChannelMismatch`] when a layer of the report has another channel count
/// than the model's layer of that path (both: a report of another model).
pub fn set_running_stats<M: Module>(model: &M, layers: &[EsmLayer]) -> Result<M, EsmError> {
    let model = model.valid();
    let states = batch_norm_states(&model);
    let by_path: HashMap<&str, &BatchNormState> =
        states.iter().map(|s| (s.path.as_str(), s)).collect();
    let mut values = HashMap::new();
    for l in layers {
        let Some(s) = by_path.get(l.path.as_str()) else {
            return Err(EsmError::UnknownLayer {
                path: l.path.clone(),
            });
        };
        let channels = s.running_mean.len();
        for got in [l.expected_mean.len(), l.expected_var.len()] {
            if got != channels {
                return Err(EsmError::ChannelMismatch {
                    path: l.path.clone(),
                    expected: channels,
                    got,
                });
            }
        }
        values.insert(s.mean_id, l.expected_mean.clone());
        values.insert(s.var_id, l.expected_var.clone());
    }
    Ok(model.map(&mut SetValues { values: &values }))
}

/// Repairs the estimation shift: sets every BatchNorm's running estimates to its expected
/// statistics on `batches`, in forward order, re-measuring after each layer so that each
/// layer's estimates account for the already corrected layers upstream (one pass over the
/// data per BatchNorm). Afterwards every layer has an ESM of (numerically) zero on these
/// data. Like [`set_running_stats`], returns an inference-mode model with its own running
/// statistics (the input and its clones are unchanged).
///
/// # Errors
/// See [`measure`].
pub fn recalibrate<M, X, F, O>(model: M, batches: &[X], mut forward: F) -> Result<M, EsmError>
where
    M: Module,
    X: Clone,
    F: FnMut(&M, X) -> O,
{
    let first = measure(&model, batches.iter().cloned(), &mut forward)?;
    let mut model = model;
    for layer in &first.layers {
        let report = measure(&model, batches.iter().cloned(), &mut forward)?;
        if let Some(current) = report.layers.iter().find(|l| l.path == layer.path) {
            model = set_running_stats(&model, std::slice::from_ref(current))?;
        }
    }
    Ok(model)
}

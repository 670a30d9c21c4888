//! Batch normalization that matches PyTorch's `nn.BatchNorm1d` / `nn.BatchNorm2d` exactly.

use burn::module::{Content, DisplaySettings, Flag, Module, ModuleDisplay, Param, RunningState};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::NormError;
use super::check::{check_eps, check_features, check_input};

/// Configuration of a [`BatchNorm`] layer.
///
/// Defaults are PyTorch's (`torch.nn.BatchNorm2d(num_features)`): `eps = 1e-5`,
/// `momentum = Some(0.1)`, `affine = true`, `track_running_stats = true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNormConfig {
    /// Number of channels `C` of the `[N, C]` or `[N, C, H, W]` input. Must be > 0.
    pub num_features: usize,
    /// Added to the variance for numerical stability. Default `1e-5`.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Update factor of the running estimates, in `[0, 1]`:
    /// `running = (1 - momentum) · running + momentum · batch` (PyTorch convention).
    /// `None` uses a cumulative moving average (factor `1 / num_batches_tracked`).
    /// Default `Some(0.1)`.
    #[serde(default = "default_momentum")]
    pub momentum: Option<f64>,
    /// Learn a per-channel scale `weight` (γ, init 1) and shift `bias` (β, init 0).
    /// Default `true`.
    #[serde(default = "default_true")]
    pub affine: bool,
    /// Keep `running_mean`, `running_var` and `num_batches_tracked`. When `false` the batch
    /// statistics are used in training *and* in inference, as in PyTorch. Default `true`.
    #[serde(default = "default_true")]
    pub track_running_stats: bool,
}

pub(crate) fn default_eps() -> f64 {
    1e-5
}
pub(crate) fn default_momentum() -> Option<f64> {
    Some(0.1)
}
pub(crate) fn default_true() -> bool {
    true
}

impl BatchNormConfig {
    /// PyTorch's defaults for `num_features` channels.
    pub fn new(num_features: usize) -> Self {
        Self {
            num_features,
            eps: default_eps(),
            momentum: default_momentum(),
            affine: true,
            track_running_stats: true,
        }
    }

    /// Sets `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets `momentum` (`None` = cumulative moving average).
    pub fn with_momentum(mut self, momentum: Option<f64>) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets `affine`.
    pub fn with_affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Sets `track_running_stats`.
    pub fn with_track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }

    /// Builds the layer on `device`.
    ///
    /// `weight = 1`, `bias = 0`, `running_mean = 0`, `running_var = 1`,
    /// `num_batches_tracked = 0`, as `torch.nn.BatchNorm2d.reset_parameters`.
    ///
    /// # Errors
    /// [`NormError::ZeroFeatures`], [`NormError::InvalidEps`] or
    /// [`NormError::InvalidMomentum`] when the configuration is out of range.
    pub fn init(&self, device: &Device) -> Result<BatchNorm, NormError> {
        let c = self.num_features;
        check_features(c)?;
        check_eps(self.eps)?;
        if let Some(m) = self.momentum
            && !(m.is_finite() && (0.0..=1.0).contains(&m))
        {
            return Err(NormError::InvalidMomentum(m));
        }
        let (weight, bias) = if self.affine {
            (
                Some(Param::from_tensor(Tensor::ones([c], device))),
                Some(Param::from_tensor(Tensor::zeros([c], device))),
            )
        } else {
            (None, None)
        };
        let (running_mean, running_var, num_batches_tracked) = if self.track_running_stats {
            (
                Some(RunningState::new(Tensor::zeros([c], device))),
                Some(RunningState::new(Tensor::ones([c], device))),
                Some(RunningState::new(Tensor::zeros([1], device))),
            )
        } else {
            (None, None, None)
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            training: Param::from_bool(true),
            num_features: c,
            eps: self.eps,
            momentum: self.momentum,
        })
    }
}

/// Batch normalization (Ioffe & Szegedy 2015) with PyTorch's exact semantics.
///
/// `y = (x − μ) / sqrt(σ² + eps) · weight + bias`, per channel (dimension 1).
///
/// - **Training** (input on an autodiff device and the training flag set, Burn's rule; see
///   [`Module::valid`]): μ and σ² are the batch mean and the *biased* batch variance over
///   every dimension but 1. The running estimates are then updated as PyTorch does:
///   `running_mean ← (1 − m)·running_mean + m·μ` and
///   `running_var ← (1 − m)·running_var + m·σ²·n/(n − 1)` (the *unbiased* variance,
///   `n = N·H·W`), with `m = momentum`, or `m = 1 / num_batches_tracked` when `momentum` is
///   `None`. Training on one value per channel (`n = 1`) is refused, as PyTorch does.
/// - **Inference**: μ and σ² are `running_mean` and `running_var` (or the batch statistics
///   when `track_running_stats` is false).
///
/// Field names follow PyTorch's `state_dict`: `weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked` (stored as a one-element float tensor).
///
/// Burn's own `BatchNorm` stores the biased variance in `running_var` and has no `affine`
/// or `track_running_stats` options, which is why xbn has its own. On the flex backend the
/// statistics, the normalisation and the backward run as fused kernels
/// ([`fused`](super::fused)); elsewhere Burn's `batch_norm_train` primitive.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct BatchNorm {
    /// Scale γ `[C]` (present when `affine`).
    pub weight: Option<Param<Tensor<1>>>,
    /// Shift β `[C]` (present when `affine`).
    pub bias: Option<Param<Tensor<1>>>,
    /// Running estimate of the mean `[C]` (present when `track_running_stats`; the three
    /// running buffers are either all present or all absent).
    pub running_mean: Option<RunningState<Tensor<1>>>,
    /// Running estimate of the (unbiased) variance `[C]`.
    pub running_var: Option<RunningState<Tensor<1>>>,
    /// Number of training batches seen, `[1]`.
    pub num_batches_tracked: Option<RunningState<Tensor<1>>>,
    /// Training flag (cleared by [`Module::valid`]).
    pub training: Param<Flag>,
    /// Number of channels `C`.
    pub num_features: usize,
    /// Added to the variance for numerical stability.
    pub eps: f64,
    /// Update factor of the running estimates (`None` = cumulative average).
    pub momentum: Option<f64>,
}

impl BatchNorm {
    /// Applies batch normalization.
    ///
    /// # Shapes
    /// - input: `[N, C]` or `[N, C, ...]` (e.g. `[N, C, H, W]`)
    /// - output: same as the input
    ///
    /// # Panics
    /// With the message of the [`NormError`] that [`BatchNorm::try_forward`] would return.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether a forward pass of `input` would run in training mode (batch statistics and
    /// running-estimate update): the input is on an autodiff device and the training flag
    /// is set.
    pub fn is_training_for<const D: usize>(&self, input: &Tensor<D>) -> bool {
        input.device().is_autodiff() && self.training.is_enabled()
    }

    /// Applies batch normalization, returning an error instead of panicking.
    ///
    /// # Errors
    /// - [`NormError::InvalidRank`] when the input has rank < 2.
    /// - [`NormError::ChannelMismatch`] when dimension 1 is not `num_features`.
    /// - [`NormError::SingleValuePerChannel`] when batch statistics are needed and there is
    ///   only one value per channel (PyTorch: "Expected more than 1 value per channel when
    ///   training").
    /// - [`NormError::InconsistentRunningStats`] when the running buffers were edited into
    ///   an inconsistent state.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        check_input(&dims, self.num_features, "BatchNorm")?;
        let running = self.running_stats()?;
        if let Some((running_mean, _, _)) = running {
            // Reports the input to an active ESM measurement on this thread (no-op otherwise).
            crate::esm::record::observe(running_mean, &input);
        }
        let training = self.is_training_for(&input);
        if let (false, Some((mean, var, _))) = (training, running) {
            return Ok(self.forward_inference(input, mean, var));
        }
        let per_channel: usize = dims.iter().product::<usize>() / self.num_features;
        if per_channel <= 1 {
            return Err(NormError::SingleValuePerChannel {
                shape: dims.to_vec(),
            });
        }
        let update = running.filter(|_| training);
        Ok(self.forward_batch_stats(input, update, per_channel))
    }

    /// `(running_mean, running_var, num_batches_tracked)` when the layer tracks running
    /// statistics (all three present), `None` when it does not (all three absent).
    ///
    /// # Errors
    /// [`NormError::InconsistentRunningStats`] when only some of them are present.
    #[allow(clippy::type_complexity)]
    pub fn running_stats(
        &self,
    ) -> Result<
        Option<(
            &RunningState<Tensor<1>>,
            &RunningState<Tensor<1>>,
            &RunningState<Tensor<1>>,
        )>,
        NormError,
    > {
        match (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) {
            (Some(m), Some(v), Some(n)) => Ok(Some((m, v, n))),
            (None, None, None) => Ok(None),
            _ => Err(NormError::InconsistentRunningStats),
        }
    }

    fn affine_params(&self, device: &Device) -> (Tensor<1>, Tensor<1>) {
        let c = self.num_features;
        let weight = match &self.weight {
            Some(w) => w.val(),
            None => Tensor::ones([c], device),
        };
        let bias = match &self.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([c], device),
        };
        (weight, bias)
    }

    fn forward_inference<const D: usize>(
        &self,
        input: Tensor<D>,
        running_mean: &RunningState<Tensor<1>>,
        running_var: &RunningState<Tensor<1>>,
    ) -> Tensor<D> {
        let device = input.device();
        let (weight, bias) = self.affine_params(&device);
        let mean = running_mean.value().to_device(&device);
        let var = running_var.value().to_device(&device);
        super::fused::batch_norm_inference(input, weight, bias, mean, var, self.eps)
    }

    #[allow(clippy::type_complexity)]
    fn forward_batch_stats<const D: usize>(
        &self,
        input: Tensor<D>,
        update: Option<(
            &RunningState<Tensor<1>>,
            &RunningState<Tensor<1>>,
            &RunningState<Tensor<1>>,
        )>,
        per_channel: usize,
    ) -> Tensor<D> {
        let device = input.device();
        let (weight, bias) = self.affine_params(&device);
        let (output, mean, variance) =
            super::fused::batch_norm_train(input, weight, bias, self.eps);
        if let Some((rm, rv, nbt)) = update {
            let count = nbt.value_sync().to_device(&device).add_scalar(1.0);
            commit(nbt, count.clone());
            let n = per_channel as f64;
            let mean = mean.detach();
            let unbiased_var = variance.detach().mul_scalar(n / (n - 1.0));
            let old_mean = rm.value_sync().to_device(&device);
            let old_var = rv.value_sync().to_device(&device);
            let (new_mean, new_var) = match self.momentum {
                Some(m) => (
                    old_mean.mul_scalar(1.0 - m).add(mean.mul_scalar(m)),
                    old_var.mul_scalar(1.0 - m).add(unbiased_var.mul_scalar(m)),
                ),
                None => {
                    // Cumulative moving average: running += (batch - running) / count.
                    let factor = count.recip();
                    (
                        old_mean.clone().add(mean.sub(old_mean).mul(factor.clone())),
                        old_var.clone().add(unbiased_var.sub(old_var).mul(factor)),
                    )
                }
            };
            commit(rm, new_mean);
            commit(rv, new_var);
        }
        output
    }
}

/// Stores `value` in `state` and folds it into the state's current value at once.
///
/// Burn's [`RunningState::update`] only records the value for the calling thread; the
/// state's value is brought up to date lazily, by the next `value_sync` on that thread or
/// by [`Module::valid`]. Everything else that reads a module's tensors (record export,
/// `save_safetensors`, module visitors and mappers) reads the state's value directly and
/// would see the statistics of one step before. Folding at once makes every reader see
/// the current statistics, whatever the mode. With several threads updating one shared
/// state (model replicas on several devices), each update is folded when it is made, so
/// the state follows the replicas' updates in the order they happen rather than Burn's
/// average of the pending ones. This is bookkeeping on the host (a mutex and a tensor
/// handle), not a device synchronisation.
fn commit(state: &RunningState<Tensor<1>>, value: Tensor<1>) {
    state.update(value.detach());
    let _ = state.value_sync();
}

impl ModuleDisplay for BatchNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("num_features", &self.num_features)
            .add("eps", &self.eps)
            .add("momentum", &format!("{:?}", self.momentum))
            .add("affine", &self.weight.is_some())
            .add("track_running_stats", &self.running_mean.is_some())
            .optional()
    }
}

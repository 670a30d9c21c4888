//! Estimation shift magnitude (ESM) of batch normalization (Huang et al., CVPR 2022, §4).
//!
//! A BatchNorm normalises with its running estimates `{running_mean, running_var}` at
//! inference. Its *expected statistics* are the mean and population variance of its input
//! over the test set, computed with the final model in inference mode (paper §4.1). The
//! *estimation shift magnitude* is the ℓ2 distance between the two, per layer, for the mean
//! (ξ_μ) and for the variance (ξ_σ²):
//!
//! `ξ_μ = ‖running_mean − E[x]‖₂`, `ξ_σ² = ‖running_var − Var[x]‖₂`
//!
//! (no division by the channel count: that is the paper's definition; the reports also give
//! both divided by `sqrt(C)`). `Var` is the population variance over `N, H, W`; PyTorch's
//! `running_var` is an average of *unbiased* batch variances, so a BatchNorm trained on
//! batches of `n` values per channel has an ESM floor of about `Var/(n − 1)` per channel.
//!
//! - [`measure`]: the ESM of every BatchNorm of **any** model built from xbn's norms, in one
//!   streaming pass, with no per-model code (Burn has no forward hooks: BatchNorm reports
//!   its input to a recorder active on the measuring thread only).
//! - [`EsmReport`]: table, JSON, CSV and plots.
//! - [`recalibrate`]: repairs the shift, setting the running estimates to the expected
//!   statistics layer by layer.

mod dataset;
mod measure;
pub(crate) mod record;
mod report;
mod stats;

pub use dataset::measure_dataset;
pub use measure::{
    BatchNormState, EsmLayer, EsmReport, batch_norm_states, measure, recalibrate, set_running_stats,
};
pub use report::line_plot;
pub use stats::ChannelStats;

use std::path::PathBuf;

/// Errors of an ESM measurement.
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The model has no BatchNorm with running statistics.
    #[error(
        "the model has no BatchNorm with running statistics: its estimation shift is not defined"
    )]
    NoBatchNorm,
    /// No BatchNorm saw an input.
    #[error(
        "no BatchNorm saw any input: the data was empty, or the forward function does not run the model"
    )]
    NotObserved,
    /// `measure` was called inside another measurement's forward function.
    #[error("ESM measurements do not nest: measure called from inside another measurement")]
    Nested,
    /// A batch of the dataset could not be loaded.
    #[error("loading a batch failed: {0}")]
    Data(String),
    /// The model could not run on the data.
    #[error("the model could not run on the data: {0}")]
    Forward(String),
    /// A statistic could not be read back from the device.
    #[error("reading BatchNorm statistics back from the device failed: {0}")]
    Read(String),
    /// A report does not fit the model it is applied to.
    #[error(
        "{path}: the report has {got} values for a layer of {expected} channels; apply a report to the model it was measured on"
    )]
    ChannelMismatch {
        /// Module path of the layer.
        path: String,
        /// Channels of the model's layer.
        expected: usize,
        /// Values in the report.
        got: usize,
    },
    /// A report names a layer the model does not have.
    #[error(
        "{path}: the model has no BatchNorm of this path; apply a report to the model it was measured on"
    )]
    UnknownLayer {
        /// Module path in the report.
        path: String,
    },
    /// A report file could not be written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

//! The crate-wide error type.
//!
//! Every failure a user can cause (a malformed dataset file, a config whose groups do not
//! divide the channels, a wrong tensor shape, a missing checkpoint) is reported as one of
//! these typed errors, with a message that says what to do. Each module has its own error
//! enum; [`Error`] wraps them so applications can use one `Result` type.

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::esm::EsmError;
use crate::models::ModelError;
use crate::norm::NormError;
use crate::train::TrainError;

/// Any error raised by xbn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A normalization layer could not be built or applied.
    #[error(transparent)]
    Norm(#[from] NormError),
    /// A model configuration or input is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A dataset could not be found, downloaded or parsed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An estimation shift measurement failed.
    #[error(transparent)]
    Esm(#[from] EsmError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// `Result` with the crate-wide [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Argument and input checks shared by the norm layers.

use super::NormError;

pub(crate) fn check_features(num_features: usize) -> Result<(), NormError> {
    if num_features == 0 {
        return Err(NormError::ZeroFeatures);
    }
    Ok(())
}

pub(crate) fn check_eps(eps: f64) -> Result<(), NormError> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(NormError::InvalidEps(eps));
    }
    Ok(())
}

/// Checks that `dims` is `[N, C, ...]` with `C == num_features`.
pub(crate) fn check_input(
    dims: &[usize],
    num_features: usize,
    layer: &'static str,
) -> Result<(), NormError> {
    if dims.len() < 2 {
        return Err(NormError::InvalidRank {
            layer,
            shape: dims.to_vec(),
        });
    }
    if dims[1] != num_features {
        return Err(NormError::ChannelMismatch {
            layer,
            expected: num_features,
            shape: dims.to_vec(),
        });
    }
    Ok(())
}

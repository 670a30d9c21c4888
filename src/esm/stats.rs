//! Streaming per-channel mean and population variance, in f64.

use serde::{Deserialize, Serialize};

/// Per-channel count, mean and sum of squared deviations (`M2`), combined batch after
/// batch with Chan et al.'s parallel update (the pairwise form of Welford's algorithm):
/// no activation is kept and no sum of squares of raw values is formed, so the result
/// does not depend on the batch size and stays accurate for large means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Values seen per channel.
    pub count: f64,
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Sum of squared deviations from the mean per channel.
    pub m2: Vec<f64>,
}

impl ChannelStats {
    /// Merges the statistics of a batch: `count` values per channel with per-channel
    /// `mean` and `m2` (the batch's own sum of squared deviations from its mean).
    pub fn merge(&mut self, count: f64, mean: &[f64], m2: &[f64]) {
        if count == 0.0 {
            return;
        }
        if self.count == 0.0 {
            self.count = count;
            self.mean = mean.to_vec();
            self.m2 = m2.to_vec();
            return;
        }
        let n = self.count + count;
        for c in 0..self.mean.len() {
            let delta = mean[c] - self.mean[c];
            self.mean[c] += delta * count / n;
            self.m2[c] += m2[c] + delta * delta * self.count * count / n;
        }
        self.count = n;
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Population variance per channel (`M2 / n`).
    pub fn variance(&self) -> Vec<f64> {
        self.m2.iter().map(|m| m / self.count.max(1.0)).collect()
    }
}

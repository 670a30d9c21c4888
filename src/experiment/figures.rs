//! The figures of the §4 experiments (counterparts of the paper's Figures 2–5).

use std::path::Path;

use super::{MlpNorms, RunResult};
use crate::esm::{EsmError, line_plot};

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Hidden-layer number (from 1) of a norm path `layers.{i}.norm`.
fn layer_number(path: &str) -> f64 {
    path.split('.')
        .nth(1)
        .and_then(|i| i.parse::<f64>().ok())
        .map_or(f64::NAN, |i| i + 1.0)
}

fn plot(
    dir: &Path,
    name: &str,
    title: &str,
    x: &str,
    y: &str,
    series: &Series,
) -> Result<(), EsmError> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return Ok(());
    }
    for ext in ["png", "svg"] {
        line_plot(&dir.join(format!("{name}.{ext}")), title, x, y, series)?;
    }
    Ok(())
}

fn errors_over_epochs(run: &RunResult) -> Series {
    vec![
        (
            "train error (training mode)".into(),
            run.epochs
                .iter()
                .map(|p| (p.epoch as f64, p.train_error))
                .collect(),
        ),
        (
            "test error (inference mode)".into(),
            run.epochs
                .iter()
                .map(|p| (p.epoch as f64, p.test_error))
                .collect(),
        ),
    ]
}

fn esm_over_epochs(run: &RunResult, var: bool) -> Series {
    let Some(first) = run.epochs.first() else {
        return vec![];
    };
    first
        .esm
        .iter()
        .enumerate()
        .map(|(k, row)| {
            let points = run
                .epochs
                .iter()
                .filter_map(|p| {
                    p.esm
                        .get(k)
                        .map(|e| (p.epoch as f64, if var { e.esm_var } else { e.esm_mean }))
                })
                .collect();
            (format!("layer {}", layer_number(&row.path)), points)
        })
        .collect()
}

fn esm_per_layer(run: &RunResult) -> Vec<(f64, f64)> {
    run.epochs
        .last()
        .map(|p| {
            p.esm
                .iter()
                .map(|r| (layer_number(&r.path), r.esm_mean))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the figures of every dataset of `results` under `out/<dataset>/`.
///
/// # Errors
/// [`EsmError::Io`] when a figure cannot be written.
pub fn write_figures(results: &[RunResult], out: &Path) -> Result<(), EsmError> {
    let mut datasets: Vec<_> = results.iter().map(|r| r.dataset).collect();
    datasets.dedup();
    for kind in datasets {
        let dir = out.join(kind.name());
        std::fs::create_dir_all(&dir).map_err(|e| EsmError::Io {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.dataset == kind).collect();
        let find = |setting: u8, model: MlpNorms| {
            runs.iter()
                .copied()
                .filter(move |r| r.setting == setting && r.model == model)
        };

        // Figures 2 and 4: setting 1 for BN and GNBN.
        for (fig, model) in [
            ("fig2_setting1_bn", MlpNorms::Bn),
            ("fig4_setting1_gnbn", MlpNorms::Gnbn),
        ] {
            if let Some(run) = find(1, model).next() {
                let t = format!("{kind}, setting 1 (train = test), MLP-{model}");
                plot(
                    &dir,
                    &format!("{fig}_errors"),
                    &t,
                    "epoch",
                    "error (%)",
                    &errors_over_epochs(run),
                )?;
                plot(
                    &dir,
                    &format!("{fig}_esm_mean"),
                    &format!("{t}: ξμ per BN"),
                    "epoch",
                    "ξμ",
                    &esm_over_epochs(run, false),
                )?;
                plot(
                    &dir,
                    &format!("{fig}_esm_var"),
                    &format!("{t}: ξσ² per BN"),
                    "epoch",
                    "ξσ²",
                    &esm_over_epochs(run, true),
                )?;
            }
        }

        // Figure 3: setting 2 for BN.
        let bn2: Vec<&RunResult> = find(2, MlpNorms::Bn).collect();
        if !bn2.is_empty() {
            let final_errors: Series = vec![
                (
                    "train error".into(),
                    bn2.iter()
                        .map(|r| {
                            (
                                r.train_size as f64,
                                r.epochs.last().map_or(f64::NAN, |p| p.train_error),
                            )
                        })
                        .collect(),
                ),
                (
                    "test error".into(),
                    bn2.iter()
                        .map(|r| {
                            (
                                r.train_size as f64,
                                r.epochs.last().map_or(f64::NAN, |p| p.test_error),
                            )
                        })
                        .collect(),
                ),
            ];
            let t = format!("{kind}, setting 2, MLP-bn");
            plot(
                &dir,
                "fig3_setting2_bn_errors",
                &format!("{t}: final errors"),
                "|S| (training images)",
                "error (%)",
                &final_errors,
            )?;
            let per_layer: Series = bn2
                .iter()
                .map(|r| (format!("|S| = {}", r.train_size), esm_per_layer(r)))
                .collect();
            plot(
                &dir,
                "fig3_setting2_bn_esm_per_layer",
                &format!("{t}: ξμ at the end"),
                "hidden layer",
                "ξμ",
                &per_layer,
            )?;
            if let Some(small) = bn2.iter().min_by_key(|r| r.train_size) {
                let t = format!("{kind}, setting 2, MLP-bn, |S| = {}", small.train_size);
                plot(
                    &dir,
                    "fig3_setting2_bn_esm_over_epochs",
                    &format!("{t}: ξμ per BN"),
                    "epoch",
                    "ξμ",
                    &esm_over_epochs(small, false),
                )?;
            }
        }

        // Figure 5: setting 2, BN against GNBN (and no normalization for the error).
        let mut per_layer: Series = Vec::new();
        let mut test_error: Series = Vec::new();
        for model in MlpNorms::ALL {
            let runs2: Vec<&RunResult> = find(2, model).collect();
            if runs2.is_empty() {
                continue;
            }
            test_error.push((
                format!("MLP-{model}"),
                runs2
                    .iter()
                    .map(|r| {
                        (
                            r.train_size as f64,
                            r.epochs.last().map_or(f64::NAN, |p| p.test_error),
                        )
                    })
                    .collect(),
            ));
            if model != MlpNorms::None {
                for r in runs2 {
                    per_layer.push((
                        format!("MLP-{model}, |S| = {}", r.train_size),
                        esm_per_layer(r),
                    ));
                }
            }
        }
        let t = format!("{kind}, setting 2");
        plot(
            &dir,
            "fig5_setting2_esm_bn_vs_gnbn",
            &format!("{t}: ξμ of the BatchNorms at the end"),
            "hidden layer",
            "ξμ",
            &per_layer,
        )?;
        plot(
            &dir,
            "fig5_setting2_test_error",
            &format!("{t}: final test error"),
            "|S| (training images)",
            "test error (%)",
            &test_error,
        )?;
    }
    Ok(())
}

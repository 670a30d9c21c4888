//! Writing ESM reports: table, JSON, CSV and plots (PNG and SVG, with plotters).

use std::io::Write;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{EsmError, EsmReport};

/// Registers the bundled DejaVu Sans font with plotters (once per process): plots render
/// their text without any system font.
pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // A font that cannot be registered only costs the plots their text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
    });
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EsmError + '_ {
    move |e| EsmError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn plot_err(path: &Path) -> impl Fn(String) -> EsmError + '_ {
    move |e| EsmError::Io {
        path: path.to_path_buf(),
        reason: format!("plotting failed: {e}"),
    }
}

impl EsmReport {
    /// The per-layer table as text (depth, path, channels, ESM mean, ESM var, and both
    /// divided by `sqrt(C)`).
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:>5}  {:<28} {:>5} {:>12} {:>12} {:>12} {:>12}\n",
            "depth", "layer", "C", "ESM mean", "ESM var", "mean/sqrtC", "var/sqrtC"
        );
        for l in &self.layers {
            s += &format!(
                "{:>5}  {:<28} {:>5} {:>12.5} {:>12.5} {:>12.5} {:>12.5}\n",
                l.depth,
                l.path,
                l.channels,
                l.esm_mean,
                l.esm_var,
                l.esm_mean_per_sqrt_c,
                l.esm_var_per_sqrt_c
            );
        }
        if !self.untrained.is_empty() {
            s += &format!(
                "warning: {} BatchNorm(s) never trained (num_batches_tracked = 0, running \
                 statistics at their initial values): {}. A BatchNorm trains only when its \
                 input is on an autodiff device (`device.autodiff()`) and the model was not \
                 switched with `valid()`.\n",
                self.untrained.len(),
                self.untrained.join(", ")
            );
        }
        s
    }

    /// Writes the report as pretty JSON (including the expected and running statistics).
    ///
    /// # Errors
    /// [`EsmError::Io`] naming the file.
    pub fn write_json(&self, path: &Path) -> Result<(), EsmError> {
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        crate::fsutil::write_atomic(path, json.as_bytes()).map_err(io_err(path))
    }

    /// Writes the per-layer table as CSV:
    /// `depth,path,channels,esm_mean,esm_var,esm_mean_per_sqrt_c,esm_var_per_sqrt_c`.
    ///
    /// # Errors
    /// [`EsmError::Io`] naming the file.
    pub fn write_csv(&self, path: &Path) -> Result<(), EsmError> {
        let mut out = Vec::new();
        writeln!(
            out,
            "depth,path,channels,esm_mean,esm_var,esm_mean_per_sqrt_c,esm_var_per_sqrt_c"
        )
        .expect("in memory");
        for l in &self.layers {
            writeln!(
                out,
                "{},{},{},{},{},{},{}",
                l.depth,
                l.path,
                l.channels,
                l.esm_mean,
                l.esm_var,
                l.esm_mean_per_sqrt_c,
                l.esm_var_per_sqrt_c
            )
            .expect("in memory");
        }
        crate::fsutil::write_atomic(path, &out).map_err(io_err(path))
    }

    /// Plots ESM (mean and variance, the paper's ξ_μ and ξ_σ²) against depth to `path`:
    /// PNG for a `.png` path, SVG otherwise.
    ///
    /// # Errors
    /// [`EsmError::Io`] naming the file.
    pub fn plot(&self, path: &Path, title: &str) -> Result<(), EsmError> {
        let series = vec![
            (
                "ESM mean ξμ".to_string(),
                self.layers
                    .iter()
                    .map(|l| (l.depth as f64, l.esm_mean))
                    .collect(),
            ),
            (
                "ESM var ξσ²".to_string(),
                self.layers
                    .iter()
                    .map(|l| (l.depth as f64, l.esm_var))
                    .collect(),
            ),
        ];
        line_plot(
            path,
            title,
            "BatchNorm depth",
            "estimation shift magnitude",
            &series,
        )
    }
}

/// Draws `series` (name, points) as lines with markers, to PNG or SVG by extension.
///
/// # Errors
/// [`EsmError::Io`] naming the file.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), EsmError> {
    register_font();
    let size = (900, 560);
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let result = if png {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw(&root, title, x_label, y_label, series)
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    } else {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw(&root, title, x_label, y_label, series)
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    result.map_err(plot_err(path))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if y.is_finite() {
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x0 == x1 {
        x1 = x0 + 1.0;
    }
    // Head room above the highest point keeps the legend (upper right) off the curves.
    let y1 = if y1 > 0.0 { y1 * 1.3 } else { 1.0 };
    // Depths and epochs are whole numbers: label only whole ticks, without a fraction.
    let whole_x = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .all(|&(x, _)| x.fract() == 0.0);
    // Tick values come from repeated float additions: compare with a tolerance.
    let x_format = move |x: &f64| {
        if !whole_x {
            format!("{x}")
        } else if (x - x.round()).abs() < 1e-9 {
            format!("{}", x.round() as i64)
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0f64..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_format)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let finite: Vec<(f64, f64)> = pts.iter().copied().filter(|(_, y)| y.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(finite.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                finite
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    Ok(())
}

//! Progress of long work: a bar on a terminal, nothing in a pipe, and nothing at all unless
//! the application turns it on.
//!
//! The `xbn` command line calls [`enable`] at start; a program that uses xbn as a library
//! stays silent unless it does too. Bars are drawn on standard error with indicatif, which
//! hides them when standard error is not a terminal, so piped output holds only results.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns progress bars on (or off) for this process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether progress bars are on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A unit of work of known size, shown as a bar while it lasts (see the module
/// documentation); a no-op when progress is off or standard error is not a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Work of `total` items of `unit` (e.g. "img"), described by `message`.
    pub fn new(total: u64, unit: &str, message: impl Into<Cow<'static, str>>) -> Self {
        if !enabled() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // The bar takes the width the text leaves, so the line never wraps.
        let template =
            format!("{{msg}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit}, ETA {{eta}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message);
        Self { bar: Some(bar) }
    }

    /// Work of unknown size: a spinner with `message`.
    pub fn spinner(message: impl Into<Cow<'static, str>>) -> Self {
        if !enabled() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// `n` more items are done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// `n` items are done in all.
    pub fn set_position(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(n);
        }
    }

    /// Replaces the message.
    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Runs `f` with the bar hidden (to print lines that stay above it).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

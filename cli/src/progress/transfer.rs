//! Rendering of pull/push progress events on stderr: one indicatif bar per blob on a terminal,
//! plain lines (`<short-digest>: Pull complete`) otherwise. Shared by `kiln pull` and `kiln push`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use registry::{BlobKind, Event, Progress, Skipped, short_digest};

/// Whether the events are of a pull or a push (wording only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

struct State {
    direction: Direction,
    quiet: bool,
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    styles: Styles,
}

/// Bar styles, parsed once: transferring and finished.
#[derive(Clone)]
struct Styles {
    active: ProgressStyle,
    done: ProgressStyle,
}

impl Styles {
    fn new() -> Self {
        let active =
            ProgressStyle::with_template("{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let done = ProgressStyle::with_template("{prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Self { active, done }
    }
}

/// A progress sink that renders; keep it alive until the transfer ends, then call
/// [`Renderer::finish`].
pub struct Renderer {
    state: Arc<Mutex<State>>,
}

impl Renderer {
    /// Bars if stderr is a terminal (and not `quiet`), else plain lines (none if `quiet`).
    pub fn new(direction: Direction, quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), HashMap::new()));
        Self { state: Arc::new(Mutex::new(State { direction, quiet, bars, styles: Styles::new() })) }
    }

    /// The sink to hand to the registry library.
    pub fn progress(&self) -> Progress {
        let state = self.state.clone();
        Progress::new(move |event| {
            if let Ok(mut state) = state.lock() {
                state.render(event);
            }
        })
    }

    /// Leaves finished bars on screen; unfinished ones (a failed transfer) stay as they were.
    pub fn finish(&self) {
        if let Ok(mut state) = self.state.lock()
            && let Some((_, bars)) = state.bars.as_mut()
        {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

fn kind_label(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Config => " (config)",
        BlobKind::Layer | BlobKind::Manifest => "",
    }
}

impl State {
    fn render(&mut self, event: Event) {
        if self.quiet {
            return;
        }
        let direction = self.direction;
        match self.bars.as_mut() {
            Some((multi, bars)) => render_bar(direction, &self.styles, multi, bars, event),
            None => render_line(direction, event),
        }
    }
}

fn done_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Pull => "Pull complete",
        Direction::Push => "Pushed",
    }
}

fn skipped_text(reason: &Skipped) -> String {
    match reason {
        Skipped::InStore => "Already exists".into(),
        Skipped::InRegistry => "Layer already exists".into(),
        Skipped::Mounted { from } => format!("Mounted from {from}"),
    }
}

fn render_line(direction: Direction, event: Event) {
    match event {
        Event::Resolved { image, digest, platform } => match platform {
            Some(platform) => eprintln!("{image}: resolved to {digest} ({platform})"),
            None => eprintln!("{image}: resolved to {digest}"),
        },
        Event::BlobStarted { digest, kind, size } => {
            let verb = if direction == Direction::Pull { "Downloading" } else { "Uploading" };
            eprintln!("{}: {verb} {}{}", short_digest(&digest), human_size(size), kind_label(kind));
        }
        Event::BlobProgress { .. } => {}
        Event::BlobRetrying { digest, attempt, error } => {
            eprintln!("{}: Retrying (attempt {}) after: {error}", short_digest(&digest), attempt + 1);
        }
        Event::BlobSkipped { digest, reason, .. } => {
            eprintln!("{}: {}", short_digest(&digest), skipped_text(&reason))
        }
        Event::BlobDone { digest, .. } => eprintln!("{}: {}", short_digest(&digest), done_word(direction)),
        Event::ManifestPushed { tag, digest, size, .. } => {
            eprintln!("{}: digest: {digest} size: {size}", tag.as_deref().unwrap_or("manifest"));
        }
    }
}

fn render_bar(
    direction: Direction,
    styles: &Styles,
    multi: &MultiProgress,
    bars: &mut HashMap<String, ProgressBar>,
    event: Event,
) {
    let (style, done_style) = (&styles.active, &styles.done);
    let mut bar_for = |digest: &oci_spec::image::Digest, size: u64| {
        bars.entry(digest.to_string())
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(style.clone());
                bar.set_prefix(short_digest(digest).to_owned());
                bar
            })
            .clone()
    };
    match event {
        Event::Resolved { image, digest, platform } => {
            let platform = platform.map(|p| format!(" ({p})")).unwrap_or_default();
            let _ = multi.println(format!("{image}: resolved to {digest}{platform}"));
        }
        Event::BlobStarted { digest, kind, size } => {
            let bar = bar_for(&digest, size);
            let verb = if direction == Direction::Pull { "Downloading" } else { "Uploading" };
            bar.set_message(format!("{verb}{}", kind_label(kind)));
        }
        Event::BlobProgress { digest, done, total } => {
            let bar = bar_for(&digest, total);
            bar.set_length(total);
            bar.set_position(done);
        }
        Event::BlobRetrying { digest, attempt, error } => {
            let bar = bar_for(&digest, 0);
            bar.set_message(format!("Retrying (attempt {}) after: {error}", attempt + 1));
        }
        Event::BlobSkipped { digest, size, reason, .. } => {
            let bar = bar_for(&digest, size);
            bar.set_style(done_style.clone());
            bar.finish_with_message(skipped_text(&reason));
        }
        Event::BlobDone { digest, size, .. } => {
            let bar = bar_for(&digest, size);
            bar.set_style(done_style.clone());
            bar.finish_with_message(done_word(direction));
        }
        Event::ManifestPushed { tag, digest, size, .. } => {
            let _ = multi
                .println(format!("{}: digest: {digest} size: {size}", tag.as_deref().unwrap_or("manifest")));
        }
    }
}

/// `1.2MB`-style sizes, as docker prints them (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_skip_reasons_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(209_715_200), "209.7MB");
        assert_eq!(skipped_text(&Skipped::InStore), "Already exists");
        assert_eq!(skipped_text(&Skipped::Mounted { from: "a/b".into() }), "Mounted from a/b");
    }
}

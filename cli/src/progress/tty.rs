//! `--progress=tty`: a live view (indicatif) with one line per running step — its name, a timer
//! and the last [`TAIL_LINES`] lines of its output — above which finished steps collapse to one
//! permanent line each, like BuildKit's tty output:
//!
//! ```text
//!  => CACHED [build 2/4] COPY src /src/
//!  => [build 3/4] RUN make                                   1.2s
//! ⠙ [other 2/2] RUN ./configure                              0.4s
//!  => # checking for cc... cc
//!  => # checking whether the C compiler works... yes
//! ```
//!
//! A header line counts the steps and the time (`[+] Building 8.3s (7/7) FINISHED` at the end).
//! A failed step prints its name and error; its output follows once, in the failure summary. [`TtyModel`] is the
//! terminal-independent part (what to print, what to show live), tested without a terminal;
//! [`TtyRenderer`] maps it onto indicatif bars.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::Digest;

use solver::progress::{EventKind, ProgressEvent};

/// How many of a running step's last output lines the live view shows.
pub const TAIL_LINES: usize = 6;

/// A change of the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtyAction {
    /// Print these lines permanently above the live view.
    Print(Vec<String>),
    /// Show (or update) the live entry of a running step: its name and last output lines.
    Live { vertex: Digest, name: String, tail: Vec<String> },
    /// Remove the live entry of a step.
    Remove(Digest),
}

#[derive(Debug, Default)]
struct Step {
    name: String,
    started: Option<SystemTime>,
    /// Every complete output line (kept for a failure report).
    lines: Vec<String>,
    partial: Vec<u8>,
}

impl Step {
    /// Appends output, splitting lines (`\r` rewrites keep only the last segment of a line).
    fn push(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            self.lines.push(clean_line(&line[..line.len() - 1]));
        }
    }

    fn tail(&self) -> Vec<String> {
        let mut tail: Vec<String> = self.lines.iter().rev().take(TAIL_LINES).rev().cloned().collect();
        if !self.partial.is_empty() {
            if tail.len() == TAIL_LINES {
                tail.remove(0);
            }
            tail.push(clean_line(&self.partial));
        }
        tail
    }
}

/// Text of one output line for the live view: lossy UTF-8, the last `\r`-separated segment,
/// without terminal escape sequences and control characters (they would break the redraw).
fn clean_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let last = text.rsplit('\r').next().unwrap_or_default();
    let mut out = String::with_capacity(last.len());
    let mut chars = last.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI (`ESC [ … final`) and two-character escapes.
            '\u{1b}' => {
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn seconds(from: Option<SystemTime>, to: SystemTime) -> String {
    let elapsed = from.and_then(|s| to.duration_since(s).ok()).unwrap_or_default();
    format!("{:.1}s", elapsed.as_secs_f64())
}

/// What the tty view shows, independent of the terminal.
#[derive(Debug, Default)]
pub struct TtyModel {
    steps: HashMap<Digest, Step>,
    /// Every step seen, and those that ended (cached, done, failed, canceled).
    seen: std::collections::HashSet<Digest>,
    ended: std::collections::HashSet<Digest>,
    first: Option<SystemTime>,
}

impl TtyModel {
    pub fn new() -> TtyModel {
        TtyModel::default()
    }

    /// BuildKit's header line: `[+] Building 8.3s (7/7)`, and ` FINISHED` once the stream ended.
    pub fn header(&self, now: SystemTime, finished: bool) -> String {
        format!(
            "[+] Building {} ({}/{}){}",
            seconds(self.first, now),
            self.ended.len(),
            self.seen.len(),
            if finished { " FINISHED" } else { "" }
        )
    }

    /// Applies one event; returns the display changes it causes.
    pub fn handle(&mut self, event: &ProgressEvent) -> Vec<TtyAction> {
        let vertex = &event.vertex;
        self.first.get_or_insert(event.time);
        self.seen.insert(vertex.clone());
        if !matches!(event.kind, EventKind::Started { .. } | EventKind::Log { .. }) {
            self.ended.insert(vertex.clone());
        }
        match &event.kind {
            EventKind::Cached { name } => {
                self.steps.remove(vertex);
                vec![TtyAction::Remove(vertex.clone()), TtyAction::Print(vec![format!(" => CACHED {name}")])]
            }
            EventKind::Started { name } => {
                let step = self.steps.entry(vertex.clone()).or_default();
                step.name = name.clone();
                step.started = Some(event.time);
                vec![TtyAction::Live { vertex: vertex.clone(), name: name.clone(), tail: step.tail() }]
            }
            EventKind::Log { data, .. } => {
                let Some(step) = self.steps.get_mut(vertex) else { return Vec::new() };
                step.push(data);
                vec![TtyAction::Live { vertex: vertex.clone(), name: step.name.clone(), tail: step.tail() }]
            }
            EventKind::Completed => {
                let Some(step) = self.steps.remove(vertex) else { return Vec::new() };
                let line = format!(" => {} {}", step.name, seconds(step.started, event.time));
                vec![TtyAction::Remove(vertex.clone()), TtyAction::Print(vec![line])]
            }
            EventKind::Canceled => {
                let Some(step) = self.steps.remove(vertex) else { return Vec::new() };
                let line = format!(" => CANCELED {} {}", step.name, seconds(step.started, event.time));
                vec![TtyAction::Remove(vertex.clone()), TtyAction::Print(vec![line])]
            }
            EventKind::Failed { error } => {
                let Some(step) = self.steps.remove(vertex) else {
                    return vec![TtyAction::Print(vec![format!(" => ERROR: {error}")])];
                };
                // its output follows in the failure summary (the last lines, never all twice)
                let lines = vec![
                    format!(" => ERROR {} {}", step.name, seconds(step.started, event.time)),
                    format!(" => ERROR: {error}"),
                ];
                vec![TtyAction::Remove(vertex.clone()), TtyAction::Print(lines)]
            }
        }
    }
}

/// Renders events live on the terminal (stderr).
pub struct TtyRenderer {
    model: TtyModel,
    multi: MultiProgress,
    header: ProgressBar,
    bars: HashMap<Digest, ProgressBar>,
    style: ProgressStyle,
}

impl std::fmt::Debug for TtyRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtyRenderer").field("running", &self.bars.len()).finish_non_exhaustive()
    }
}

impl Default for TtyRenderer {
    fn default() -> Self {
        TtyRenderer::new(ProgressDrawTarget::stderr())
    }
}

impl TtyRenderer {
    /// A renderer drawing on `target` (normally [`ProgressDrawTarget::stderr`]).
    pub fn new(target: ProgressDrawTarget) -> TtyRenderer {
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {secs:.dim}{msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key("secs", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
            })
            .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "]);
        let multi = MultiProgress::with_draw_target(target);
        let header = multi.add(ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:.bold}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ));
        TtyRenderer { model: TtyModel::new(), multi, header, bars: HashMap::new(), style }
    }

    /// Renders one event.
    pub fn handle(&mut self, event: &ProgressEvent) -> std::io::Result<()> {
        let actions = self.model.handle(event);
        self.header.set_message(self.model.header(SystemTime::now(), false));
        for action in actions {
            match action {
                TtyAction::Print(lines) => {
                    for line in lines {
                        self.multi.println(line)?;
                    }
                }
                TtyAction::Live { vertex, name, tail } => {
                    let bar = self.bars.entry(vertex).or_insert_with(|| {
                        let bar = self.multi.add(ProgressBar::new_spinner().with_style(self.style.clone()));
                        bar.set_prefix(name);
                        bar.enable_steady_tick(Duration::from_millis(100));
                        bar
                    });
                    let message: String = tail.iter().map(|line| format!("\n => # {line}")).collect();
                    bar.set_message(message);
                }
                TtyAction::Remove(vertex) => {
                    if let Some(bar) = self.bars.remove(&vertex) {
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                    }
                }
            }
        }
        Ok(())
    }

    /// Clears whatever is still live and prints the final header (at the end of the stream).
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.header.finish_and_clear();
        if !self.model.seen.is_empty() {
            let _ = self.multi.println(self.model.header(SystemTime::now(), true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solver::progress::LogStream;

    #[test]
    fn running_steps_show_a_tail_and_collapse_or_report_their_whole_log() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let d = |n: u8| cache::sha256_digest(&[n]);
        let ev = |vertex: u8, ms: u64, kind: EventKind| ProgressEvent {
            vertex: d(vertex),
            time: base + Duration::from_millis(ms),
            kind,
        };
        let log = |data: String| EventKind::Log { stream: LogStream::Stdout, data: data.into_bytes() };
        let mut model = TtyModel::new();
        assert_eq!(
            model.handle(&ev(1, 0, EventKind::Cached { name: "[1/3] FROM busybox".into() })),
            vec![TtyAction::Remove(d(1)), TtyAction::Print(vec![" => CACHED [1/3] FROM busybox".into()])]
        );
        model.handle(&ev(2, 0, EventKind::Started { name: "[2/3] RUN make".into() }));
        let mut last = Vec::new();
        for i in 0..10 {
            last = model.handle(&ev(2, 100 + i, log(format!("line {i}\n"))));
        }
        // A progress meter's carriage returns keep only the newest text.
        let actions = model.handle(&ev(2, 200, log("10%\r50%".into())));
        let TtyAction::Live { tail, .. } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.first().map(String::as_str), Some("line 5"));
        assert_eq!(tail.last().map(String::as_str), Some("50%"));
        assert!(matches!(&last[0], TtyAction::Live { tail, .. } if tail.len() == TAIL_LINES));
        assert_eq!(
            model.handle(&ev(2, 1234, EventKind::Completed)),
            vec![TtyAction::Remove(d(2)), TtyAction::Print(vec![" => [2/3] RUN make 1.2s".into()])]
        );

        model.handle(&ev(3, 2000, EventKind::Started { name: "[3/3] RUN test".into() }));
        for i in 0..30 {
            model.handle(&ev(3, 2001, log(format!("test {i}\n"))));
        }
        model.handle(&ev(3, 2002, log("no newline".into())));
        assert_eq!(model.header(base + Duration::from_millis(2400), false), "[+] Building 2.4s (2/3)");
        let actions = model.handle(&ev(3, 2500, EventKind::Failed { error: "exit code: 1".into() }));
        let TtyAction::Print(lines) = &actions[1] else { panic!("{actions:?}") };
        // the log is not dumped here: the failure summary shows its last lines once
        assert_eq!(lines, &[" => ERROR [3/3] RUN test 0.5s", " => ERROR: exit code: 1"]);
        assert_eq!(
            model.header(base + Duration::from_millis(2600), true),
            "[+] Building 2.6s (3/3) FINISHED"
        );
        assert_eq!(clean_line(b"\x1b[1;31merror\x1b[0m:\tbad\x07\r"), "error:    bad");
        // Events of unknown steps are ignored.
        assert!(model.handle(&ev(9, 0, log("x\n".into()))).is_empty());
    }

    #[test]
    fn renderer_drives_hidden_bars() {
        let mut renderer = TtyRenderer::new(ProgressDrawTarget::hidden());
        let d = cache::sha256_digest(b"x");
        let ev = |kind| ProgressEvent { vertex: d.clone(), time: SystemTime::now(), kind };
        renderer.handle(&ev(EventKind::Started { name: "RUN x".into() })).unwrap();
        assert_eq!(renderer.bars.len(), 1);
        renderer.handle(&ev(EventKind::Log { stream: LogStream::Stderr, data: b"hi\n".to_vec() })).unwrap();
        renderer.handle(&ev(EventKind::Completed)).unwrap();
        assert!(renderer.bars.is_empty());
        renderer.finish();
    }
}

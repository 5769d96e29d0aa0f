//! Which progress display `kiln build` uses, from `--progress`/`-q`, `BUILDKIT_PROGRESS` and the
//! facts about the terminal, as buildx chooses: `auto` is the live view only where it can work
//! (stderr a terminal of known width, `TERM` not `dumb`, not under CI), plain text elsewhere.

use std::io::IsTerminal;

use crate::progress;

use super::build::ProgressMode;

/// What the environment says about stderr and the user's choices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// stderr is a terminal.
    pub stderr_tty: bool,
    /// The terminal's width in columns, when known.
    pub width: Option<u16>,
    /// `TERM`.
    pub term: Option<String>,
    /// `CI`.
    pub ci: Option<String>,
    /// `BUILDKIT_PROGRESS`: the default of `--progress`.
    pub buildkit_progress: Option<String>,
}

impl Environment {
    /// The facts of this process.
    pub fn current() -> Environment {
        let stderr = std::io::stderr();
        Environment {
            stderr_tty: stderr.is_terminal(),
            width: executor::tty::window_size(&stderr).map(|(_, columns)| columns),
            term: std::env::var("TERM").ok(),
            ci: std::env::var("CI").ok(),
            buildkit_progress: std::env::var("BUILDKIT_PROGRESS").ok(),
        }
    }

    /// Whether the live view can work here.
    fn live_view(&self) -> bool {
        let dumb = matches!(self.term.as_deref(), Some("dumb") | Some(""));
        let ci = self.ci.as_deref().is_some_and(|v| !matches!(v, "" | "0" | "false"));
        self.stderr_tty && self.width.is_some_and(|w| w > 0) && !dumb && !ci
    }
}

/// The display for `--progress` (`None` when not given) and `-q`: never `Auto`.
pub fn choose(flag: Option<ProgressMode>, quiet: bool, env: &Environment) -> progress::ProgressMode {
    if quiet {
        return progress::ProgressMode::Quiet;
    }
    let from_env = env.buildkit_progress.as_deref().and_then(|value| {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "auto" => ProgressMode::Auto,
            "tty" => ProgressMode::Tty,
            "plain" => ProgressMode::Plain,
            "rawjson" => ProgressMode::Rawjson,
            "quiet" => ProgressMode::Quiet,
            _ => return None,
        })
    });
    match flag.or(from_env).unwrap_or(ProgressMode::Auto) {
        ProgressMode::Auto if env.live_view() => progress::ProgressMode::Tty,
        ProgressMode::Auto => progress::ProgressMode::Plain,
        // an explicit `tty` is honoured wherever there is a terminal at all
        ProgressMode::Tty if env.stderr_tty => progress::ProgressMode::Tty,
        ProgressMode::Tty | ProgressMode::Plain => progress::ProgressMode::Plain,
        ProgressMode::Rawjson => progress::ProgressMode::RawJson,
        ProgressMode::Quiet => progress::ProgressMode::Quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use progress::ProgressMode as Shown;

    fn terminal() -> Environment {
        Environment {
            stderr_tty: true,
            width: Some(120),
            term: Some("xterm-256color".into()),
            ..Default::default()
        }
    }

    #[test]
    fn auto_is_live_only_where_the_live_view_works() {
        assert_eq!(choose(None, false, &terminal()), Shown::Tty);
        let cases = [
            Environment { stderr_tty: false, ..terminal() },
            Environment { term: Some("dumb".into()), ..terminal() },
            Environment { width: None, ..terminal() },
            Environment { width: Some(0), ..terminal() },
            Environment { ci: Some("true".into()), ..terminal() },
        ];
        for env in cases {
            assert_eq!(choose(None, false, &env), Shown::Plain, "{env:?}");
            assert_eq!(choose(Some(ProgressMode::Auto), false, &env), Shown::Plain, "{env:?}");
        }
        assert_eq!(choose(None, false, &Environment { ci: Some("false".into()), ..terminal() }), Shown::Tty);
    }

    #[test]
    fn buildkit_progress_is_the_default_and_the_flag_wins() {
        let env = |value: &str| Environment { buildkit_progress: Some(value.into()), ..terminal() };
        assert_eq!(choose(None, false, &env("plain")), Shown::Plain);
        assert_eq!(choose(None, false, &env("rawjson")), Shown::RawJson);
        assert_eq!(choose(None, false, &env("quiet")), Shown::Quiet);
        assert_eq!(choose(None, false, &env("bogus")), Shown::Tty);
        assert_eq!(choose(Some(ProgressMode::Tty), false, &env("plain")), Shown::Tty);
        let piped = Environment { stderr_tty: false, ..env("tty") };
        assert_eq!(choose(None, false, &piped), Shown::Plain);
    }

    #[test]
    fn quiet_wins_over_everything() {
        assert_eq!(choose(Some(ProgressMode::Plain), true, &terminal()), Shown::Quiet);
        assert_eq!(choose(Some(ProgressMode::Quiet), false, &terminal()), Shown::Quiet);
    }
}

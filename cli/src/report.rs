//! Rendering of errors for humans: one `error:` line with the cause chain.

/// Prints `err` to stderr. With `verbose`, the whole `caused by` chain is listed one per line.
pub fn error(err: &anyhow::Error, verbose: bool) {
    let mut text = format!("error: {err}");
    let mut causes = err.chain().skip(1).peekable();
    if verbose {
        for cause in causes {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    } else if causes.peek().is_some() {
        let tail: Vec<String> = causes.map(|c| c.to_string()).collect();
        text.push_str(&format!(": {}", tail.join(": ")));
    }
    eprintln!("{text}");
}

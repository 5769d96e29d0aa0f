//! The renderers against a scripted build (goldens under `testdata/cli/progress/`).

use std::io::Write;
use std::time::{Duration, SystemTime};

use solver::progress::{EventKind, LogStream, ProgressEvent};

use super::*;

/// A scripted build with a fake clock: two cached steps, two parallel runs with partial
/// lines, one failure, one cancellation.
fn scripted_events() -> Vec<ProgressEvent> {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let at = |ms: u64| base + Duration::from_millis(ms);
    let d = |n: u8| cache::sha256_digest(&[n]);
    let ev = |vertex: u8, ms: u64, kind: EventKind| ProgressEvent { vertex: d(vertex), time: at(ms), kind };
    let log = |data: &str| EventKind::Log { stream: LogStream::Stdout, data: data.as_bytes().to_vec() };
    let events = vec![
        ev(1, 0, EventKind::Cached { name: "[build 1/4] FROM docker.io/library/busybox:latest".into() }),
        ev(2, 0, EventKind::Cached { name: "[build 2/4] COPY src /src/".into() }),
        ev(3, 10, EventKind::Started { name: "[build 3/4] RUN make".into() }),
        ev(3, 522, log("cc -o app ")),
        ev(3, 600, log("main.c\nlinking\n")),
        ev(4, 700, EventKind::Started { name: "[other 2/2] RUN sleep 1".into() }),
        ev(4, 900, log("zzz\n")),
        ev(3, 1000, log("no newline at end")),
        ev(3, 1210, EventKind::Completed),
        ev(
            4,
            1800,
            EventKind::Failed {
                error: "process \"/bin/sh -c sleep 1\" did not complete successfully: exit code: 1".into(),
            },
        ),
        ev(5, 1800, EventKind::Started { name: "[final 2/2] COPY --from=build /app /app".into() }),
        ev(5, 1900, EventKind::Canceled),
    ];
    events
}

#[test]
fn scripted_events_render_like_buildkit_plain() {
    let mut renderer = PlainRenderer::new(Vec::new());
    for event in &scripted_events() {
        renderer.handle(event).unwrap();
    }
    let text = String::from_utf8(renderer.into_inner()).unwrap();
    golden_check("progress/plain.txt", &text);
}

#[test]
fn failed_step_logs_are_never_clipped_in_plain() {
    let d = cache::sha256_digest(b"step");
    let ev = |kind| ProgressEvent { vertex: d.clone(), time: SystemTime::UNIX_EPOCH, kind };
    let mut renderer = PlainRenderer::new(Vec::new());
    renderer.handle(&ev(EventKind::Started { name: "[2/2] RUN make".into() })).unwrap();
    let log: String = (0..500).map(|i| format!("line {i}\n")).collect();
    let data = log.into_bytes();
    renderer.handle(&ev(EventKind::Log { stream: LogStream::Stderr, data })).unwrap();
    renderer.handle(&ev(EventKind::Failed { error: "exit code: 2".into() })).unwrap();
    let text = String::from_utf8(renderer.into_inner()).unwrap();
    assert_eq!(text.lines().count(), 502);
    assert!(text.contains("#1 0.000 line 0\n") && text.contains("#1 0.000 line 499\n"));
    assert!(text.ends_with("#1 ERROR: exit code: 2\n"));
}

#[test]
fn scripted_events_render_as_rawjson() {
    let mut renderer = RawJsonRenderer::new(Vec::new());
    for event in &scripted_events() {
        renderer.handle(event).unwrap();
    }
    let text = String::from_utf8(renderer.into_inner()).unwrap();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.get("vertexes").is_some() || value.get("logs").is_some(), "{line}");
    }
    golden_check("progress/rawjson.jsonl", &text);
}

#[test]
fn quiet_shows_only_failed_steps() {
    let mut renderer = QuietRenderer::new(Vec::new());
    for event in &scripted_events() {
        renderer.handle(event).unwrap();
    }
    let text = String::from_utf8(renderer.into_inner()).unwrap();
    golden_check("progress/quiet.txt", &text);
    assert!(text.starts_with("#1 [other 2/2] RUN sleep 1\n"), "{text}");
}

#[tokio::test]
async fn render_to_drains_until_every_sender_is_dropped() {
    for (mode, golden) in [
        (ProgressMode::Plain, "progress/plain.txt"),
        (ProgressMode::Tty, "progress/plain.txt"),
        (ProgressMode::RawJson, "progress/rawjson.jsonl"),
        (ProgressMode::Quiet, "progress/quiet.txt"),
    ] {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let out = SharedBuf::default();
        let task = render_to(mode, rx, out.clone());
        for event in scripted_events() {
            tx.send(event).unwrap();
        }
        drop(tx);
        task.await.unwrap().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        golden_check(golden, &text);
    }
}

#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compares `actual` with `testdata/cli/<rel>`, or rewrites it with `KILN_BLESS=1` (refused
/// when `CI=true`: CI compares, it never rewrites goldens).
fn golden_check(rel: &str, actual: &str) {
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/cli").join(rel);
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let ci = std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1");
    assert!(!(bless && ci), "KILN_BLESS=1 is refused when CI=true: bless goldens locally and commit them");
    if bless {
        std::fs::write(&file, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read golden file {} ({e}); KILN_BLESS=1 creates it", file.display()));
    assert!(
        expected == actual,
        "golden file {} differs (KILN_BLESS=1 to update)\n--- expected\n{expected}\n--- actual\n{actual}",
        file.display()
    );
}

//! A test runner for test binaries with `harness = false` whose tests are async and must run
//! on the main thread's terms (the sandbox init re-executes the binary, so `main` must come
//! first): runs each test on a fresh multi-threaded tokio runtime, catches its panic, prints
//! libtest-like lines and exits 1 when one failed. `--list` lists; a free argument filters by
//! substring, as libtest does.

use std::future::Future;
use std::pin::Pin;

/// One test: its name, whether it needs the real root (not only root of a user namespace),
/// and the function making its future.
pub struct AsyncTest {
    pub name: &'static str,
    pub needs_real_root: bool,
    pub test: fn() -> Pin<Box<dyn Future<Output = ()>>>,
}

impl std::fmt::Debug for AsyncTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTest")
            .field("name", &self.name)
            .field("needs_real_root", &self.needs_real_root)
            .finish()
    }
}

/// Runs `tests`; `real_root` says whether the process is the real root (a test needing it is
/// skipped loudly otherwise, and fails under `CI=true`, where nothing may be skipped).
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn run(tests: Vec<AsyncTest>, real_root: bool) {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let list_only = std::env::args().any(|a| a == "--list");
    let mut failed = Vec::new();
    let mut ran = 0;
    for AsyncTest { name, needs_real_root, test } in tests {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        if list_only {
            println!("{name}: test");
            continue;
        }
        if needs_real_root && !real_root {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{name} needs root, and CI=true: run the tests as root (CI never skips them)"
            );
            eprintln!("\n!!!!!!!! SKIP: {name} needs root (owners other than uid 0); NOT run !!!!!!!!\n");
            continue;
        }
        ran += 1;
        let outcome = std::panic::catch_unwind(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(test());
        });
        match outcome {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    if list_only {
        return;
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

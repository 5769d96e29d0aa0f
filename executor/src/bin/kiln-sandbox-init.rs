//! Stand-alone sandbox init, for tests and embedders whose own binary cannot call
//! `executor::init::maybe_run_init` (e.g. test harnesses). Point `KILN_SANDBOX_INIT` or
//! `Executor::with_init_program` at it.

fn main() {
    match executor::init::maybe_run_init() {
        Some(code) => std::process::exit(code),
        None => {
            eprintln!("kiln-sandbox-init: internal program of kiln, not meant to be run by hand");
            std::process::exit(2);
        }
    }
}

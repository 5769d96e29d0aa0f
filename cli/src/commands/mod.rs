//! One module per command (or command group). Each exposes its clap arguments and an async `run`.

pub mod debug;

//! One module per command (or command group). Each exposes its clap arguments and an async `run`.

pub mod build;
pub mod build_check;
pub mod container;
pub mod debug;
pub mod exec;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod inspect_container;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod progress_mode;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod run;
pub mod save;
pub mod system;
pub mod tag;
pub mod transfer_progress;
pub mod volume;

//! The executor seam (BuildKit's `Executor`): run one process spec with its mounts, io and
//! cancellation to its end. [`Executor`] (the sandbox) implements it; the build's op runner
//! takes any implementation, so its tests can run on a fake that records specs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::sandbox::{Executor, ExitStatus, Stdio};
use crate::spec::SandboxSpec;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs processes: the one thing the build needs of a sandbox.
pub trait ProcessExecutor: Send + Sync + fmt::Debug {
    /// Runs `spec` with `stdio` until it exits, or until `cancel` completes (then the process
    /// is killed and the status is the kill's). Every mount and state the run made is undone
    /// before the returned future completes.
    fn run<'a>(
        &'a self,
        spec: SandboxSpec,
        stdio: Stdio,
        cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, crate::Result<ExitStatus>>;
}

impl ProcessExecutor for Executor {
    fn run<'a>(
        &'a self,
        spec: SandboxSpec,
        stdio: Stdio,
        cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, crate::Result<ExitStatus>> {
        Box::pin(async move {
            let sandbox = self.spawn(spec, stdio).await?;
            sandbox.wait_or_cancel(cancel).await
        })
    }
}

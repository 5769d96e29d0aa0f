//! The last steps inside the container: user, environment, working dir, rlimits, capabilities,
//! `no_new_privs`, seccomp, exec.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Uid};
use seccompiler::BpfProgram;

use crate::caps::{self, CapSet};
use crate::init::InitError;
use crate::spec::{ProcessSpec, RlimitResource};
use crate::user::{self, ExecUser};
use crate::{mounts, seccomp, sys};

/// Docker's and BuildKit's default `PATH` (`system.DefaultPathEnv`): of a process whose environment has
/// none, of an image that sets none. The one definition (the solver uses it too).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A process ready to be executed.
#[derive(Debug)]
pub struct Prepared {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    user: ExecUser,
    caps: CapSet,
    last_cap: u32,
    seccomp: Option<Vec<BpfProgram>>,
    no_new_privileges: bool,
}

fn cstring(value: &str) -> Result<CString, InitError> {
    CString::new(value)
        .map_err(|_| InitError::Invalid(format!("argument or environment entry contains NUL: {value:?}")))
}

/// Environment with docker's defaults (`PATH`, `HOSTNAME` unless `hostname` is `None`, `HOME`,
/// `TERM` for ttys).
pub fn environment(spec_env: &[String], hostname: Option<&str>, home: &str, tty: bool) -> Vec<String> {
    let mut env: Vec<String> = Vec::with_capacity(spec_env.len() + 4);
    let has =
        |env: &[String], key: &str| env.iter().any(|e| e.split_once('=').map_or(e == key, |(k, _)| k == key));
    if !has(spec_env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(hostname) = hostname {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env.extend(spec_env.iter().cloned());
    if tty && !has(&env, "TERM") {
        env.push("TERM=xterm".to_owned());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    // later entries win, like docker: keep the last of each key
    let mut seen = std::collections::HashSet::new();
    let mut deduped: Vec<String> = env
        .into_iter()
        .rev()
        .filter(|e| seen.insert(e.split_once('=').map_or(e.clone(), |(k, _)| k.to_owned())))
        .collect();
    deduped.reverse();
    deduped
}

/// Finds `name` in the `PATH` of `env` (inside the current root).
pub fn lookup(name: &str, env: &[String]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path.split(':').filter(|dir| !dir.is_empty()).map(|dir| Path::new(dir).join(name)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

fn read_optional(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn rlimit_resource(resource: RlimitResource) -> Resource {
    match resource {
        RlimitResource::As => Resource::RLIMIT_AS,
        RlimitResource::Core => Resource::RLIMIT_CORE,
        RlimitResource::Cpu => Resource::RLIMIT_CPU,
        RlimitResource::Data => Resource::RLIMIT_DATA,
        RlimitResource::Fsize => Resource::RLIMIT_FSIZE,
        RlimitResource::Locks => Resource::RLIMIT_LOCKS,
        RlimitResource::Memlock => Resource::RLIMIT_MEMLOCK,
        RlimitResource::Msgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitResource::Nice => Resource::RLIMIT_NICE,
        RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
        RlimitResource::Nproc => Resource::RLIMIT_NPROC,
        RlimitResource::Rss => Resource::RLIMIT_RSS,
        RlimitResource::Rtprio => Resource::RLIMIT_RTPRIO,
        RlimitResource::Rttime => Resource::RLIMIT_RTTIME,
        RlimitResource::Sigpending => Resource::RLIMIT_SIGPENDING,
        RlimitResource::Stack => Resource::RLIMIT_STACK,
    }
}

/// Resolves the user, environment and program, creates and enters the working directory, sets
/// rlimits and compiles the seccomp filter. Runs after pivot_root, still as full root.
/// `privileged`: every capability this process has, no seccomp, no `no_new_privs`.
pub fn prepare(spec: &ProcessSpec, hostname: &str, privileged: bool) -> Result<Prepared, InitError> {
    let Some(arg0) = spec.args.first() else {
        return Err(crate::Error::EmptyCommand.into());
    };
    let passwd = read_optional("/etc/passwd");
    let group = read_optional("/etc/group");
    let user = user::resolve(&spec.user, passwd.as_deref(), group.as_deref(), &spec.additional_groups)?;
    let env = environment(&spec.env, spec.hostname_env.then_some(hostname), &user.home, spec.tty);
    mounts::enter_cwd(&spec.cwd)?;
    let program = lookup(arg0, &env).ok_or_else(|| InitError::NotFound(arg0.clone()))?;
    for limit in &spec.rlimits {
        set_rlimit(limit)?;
    }
    let caps = if privileged {
        caps::current_effective()
            .unwrap_or_else(|| caps::effective_set(&["ALL".into()], &[]).unwrap_or_default())
    } else {
        caps::effective_set(&spec.cap_add, &spec.cap_drop)?
    };
    let last_cap =
        read_optional("/proc/sys/kernel/cap_last_cap").and_then(|s| s.trim().parse().ok()).unwrap_or(40);
    let seccomp = if spec.seccomp && !privileged { Some(seccomp::docker_default(caps)?) } else { None };
    Ok(Prepared {
        program: cstring(&program.to_string_lossy())?,
        argv: spec.args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        user,
        caps,
        last_cap,
        seccomp,
        no_new_privileges: spec.no_new_privileges && !privileged,
    })
}

/// `setrlimit`, with the reason of the usual failure: a hard limit above the current one needs
/// `CAP_SYS_RESOURCE`.
fn set_rlimit(limit: &crate::spec::Rlimit) -> Result<(), InitError> {
    let resource = rlimit_resource(limit.resource);
    let name = limit.resource.name();
    let show =
        |value: u64| if value == libc::RLIM_INFINITY { "unlimited".to_owned() } else { value.to_string() };
    if limit.soft > limit.hard {
        return Err(InitError::Invalid(format!(
            "ulimit {name}: the soft limit {} is above the hard limit {}",
            show(limit.soft),
            show(limit.hard)
        )));
    }
    match setrlimit(resource, limit.soft, limit.hard) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let current = nix::sys::resource::getrlimit(resource).map(|(_, hard)| hard).unwrap_or(0);
            Err(InitError::Invalid(format!(
                "ulimit {name}={}:{}: the hard limit cannot be raised above the current {} without \
                 CAP_SYS_RESOURCE",
                show(limit.soft),
                show(limit.hard),
                show(current)
            )))
        }
        Err(source) => Err(InitError::Sys { what: format!("setrlimit {name}"), source }),
    }
}

fn sys_err(what: &'static str) -> impl FnOnce(Errno) -> InitError {
    move |source| InitError::Sys { what: what.to_owned(), source }
}

/// Drops privileges and executes the process. Returns only on failure.
pub fn exec(prepared: &Prepared) -> Result<crate::init::Never, InitError> {
    for cap in 0..=prepared.last_cap {
        if !prepared.caps.contains(cap) {
            sys::capbset_drop(cap).map_err(sys_err("drop from the capability bounding set"))?;
        }
    }
    let gids: Vec<Gid> = prepared.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(sys_err("setgroups"))?;
    let gid = Gid::from_raw(prepared.user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(sys_err("setresgid"))?;
    let uid = Uid::from_raw(prepared.user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(sys_err("setresuid"))?;
    if uid.is_root() {
        sys::capset(prepared.caps.0, prepared.caps.0, 0).map_err(sys_err("capset"))?;
    } else {
        sys::capset(0, 0, 0).map_err(sys_err("capset"))?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if prepared.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(sys_err("set no_new_privs"))?;
    }
    if let Some(programs) = &prepared.seccomp {
        seccomp::apply(programs)?;
    }
    let err = match nix::unistd::execve(&prepared.program, &prepared.argv, &prepared.env) {
        Err(err) => err,
        Ok(never) => match never {},
    };
    let path = prepared.program.to_string_lossy().into_owned();
    if err == Errno::E2BIG {
        return Err(arguments_too_long(path, &prepared.argv, &prepared.env));
    }
    Err(InitError::Exec { path, source: err })
}

/// The kernel's limit on one argument or environment string (`MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// execve's `E2BIG`, with the sizes that explain it.
fn arguments_too_long(path: String, argv: &[CString], env: &[CString]) -> InitError {
    let strings = argv.iter().chain(env);
    let total: usize = strings.clone().map(|s| s.as_bytes_with_nul().len() + size_of::<usize>()).sum();
    let longest = strings.map(|s| s.as_bytes_with_nul().len()).max().unwrap_or(0);
    InitError::ArgumentsTooLong { path, total, longest, arguments: argv.len(), environment: env.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_defaults_and_overrides() {
        let env = environment(&["A=1".into(), "HOME=/x".into(), "A=2".into()], Some("box"), "/root", true);
        assert_eq!(
            env,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=box".into(),
                "HOME=/x".into(),
                "A=2".into(),
                "TERM=xterm".into()
            ]
        );
        let env = environment(&["PATH=/bin".into()], Some("h"), "/home/u", false);
        assert_eq!(env, vec!["HOSTNAME=h".to_owned(), "PATH=/bin".into(), "HOME=/home/u".into()]);
        // build steps: no HOSTNAME (BuildKit sets none)
        let env = environment(&["PATH=/bin".into()], None, "/home/u", false);
        assert_eq!(env, vec!["PATH=/bin".to_owned(), "HOME=/home/u".into()]);
    }
}

//! `RUN`: shell/exec form, heredocs, `--mount`, `--network`.

use parser::mount::MountType;
use parser::{CommandForm, Instruction, Run};

use super::dispatch::{DEFAULT_PATH, StageState, instruction_location};
use super::format::{clean, summarize_heredoc};
use super::plan::Lowerer;
use super::{FrontendError, ImageResolver, NamedContext, Warning};
use crate::graph::{
    CacheMount, CacheSharing, FileAction, FileOp, ImageSource, Input, MkfileAction, Mount, MountKind,
    NetworkMode, Op, SecretMount, SourceOp, SshMount, TmpfsMount, VertexMetadata,
};

/// Proxy build args BuildKit passes to RUN without an ARG (and keeps out of the history and
/// the cache key); matched without regard to case.
const PROXY_ARGS: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"];

/// The proxy variables of `build_args` as BuildKit sets them for RUN: each proxy arg given in
/// any case (the last in sorted key order wins) becomes `NAME=v` and `name=v`; names the step's
/// environment already sets (an `ARG`/`ENV` of that name) are left to it.
pub(super) fn proxy_env(
    build_args: &std::collections::BTreeMap<String, String>,
    env: &[(String, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    for proxy in PROXY_ARGS {
        let value = build_args.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(proxy)).map(|(_, v)| v);
        let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
        for name in [proxy.to_string(), proxy.to_ascii_lowercase()] {
            if !env.iter().any(|(k, _)| *k == name) {
                out.push(format!("{name}={value}"));
            }
        }
    }
    out
}

/// Inputs of an exec op being assembled (deduplicated).
struct Inputs(Vec<Input>);

impl Inputs {
    fn index(&mut self, input: Input) -> u32 {
        match self.0.iter().position(|i| *i == input) {
            Some(pos) => pos as u32,
            None => {
                self.0.push(input);
                (self.0.len() - 1) as u32
            }
        }
    }
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    pub(super) async fn run(
        &mut self,
        state: &mut StageState,
        index: usize,
        instruction: &Instruction,
        run: &Run,
        onbuild: bool,
    ) -> Result<(), FrontendError> {
        if state.platform != self.options.build_platform {
            let show = |p: &crate::graph::Platform| match &p.variant {
                Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            };
            return Err(self.error_at(
                instruction,
                format!(
                    "cannot run a step for platform {}: kiln has no emulation and runs steps only for the host \
                     platform {} (pin the stage with FROM --platform=$BUILDPLATFORM)",
                    show(&state.platform),
                    show(&self.options.build_platform)
                ),
            ));
        }
        let mut inputs = Inputs(vec![state.fs.clone()]);
        let mut mounts = vec![Mount::rootfs()];
        // variables a secret sets show as **** in the step name (BuildKit's withSecretEnvMask)
        let mut display_env = state.env.clone();
        for name in
            run.mounts.iter().filter(|m| m.mount_type == MountType::Secret).filter_map(|m| m.env.as_ref())
        {
            display_env.retain(|(key, _)| key != name);
            display_env.push((name.clone(), "****".into()));
        }
        let mut text =
            self.onbuild_prefix(onbuild, &self.progress_text_with(&display_env, &instruction.original));

        // argv, BuildKit's heredoc rules
        let mut args: Vec<String> = match &run.command.form {
            CommandForm::Exec { args } => args.clone(),
            CommandForm::Shell { command } => vec![command.clone()],
        };
        let prepend_shell = matches!(run.command.form, CommandForm::Shell { .. });
        if let Some(first) = run.command.heredocs.first() {
            let lone_marker = prepend_shell
                && args.len() == 1
                && parser::parse_heredoc_marker(args[0].trim()).ok().flatten().is_some();
            if lone_marker {
                if first.data.starts_with("#!") {
                    // a script with a shebang: written to a file and run
                    let script = FileAction::Mkfile(MkfileAction {
                        path: format!("/{}", first.name),
                        mode: 0o755,
                        data: first.data.clone().into_bytes(),
                        make_parents: None,
                        owner: None,
                        timestamp: None,
                    });
                    let op = Op::File(FileOp { base: None, actions: vec![script] });
                    let file = self.graph.add_output(
                        op,
                        Vec::new(),
                        VertexMetadata {
                            description: Some("[internal] preparing inline document".into()),
                            ..VertexMetadata::default()
                        },
                    )?;
                    let input = inputs.index(file);
                    mounts.push(Mount {
                        input: Some(input),
                        selector: String::new(),
                        dest: "/dev/pipes".into(),
                        output: None,
                        readonly: true,
                        kind: MountKind::Bind,
                    });
                    args = vec![format!("/dev/pipes/{}", first.name)];
                } else {
                    args = vec![first.data.clone()];
                }
                text.push_str(&format!(" ({})", summarize_heredoc(&first.data)));
            } else {
                let mut script = args.join(" ");
                for heredoc in &run.command.heredocs {
                    script.push('\n');
                    script.push_str(&heredoc.data);
                    script.push_str(&heredoc.name);
                }
                args = vec![script];
            }
        }
        if prepend_shell {
            let mut shell = state.shell();
            shell.push(args.join(" "));
            args = shell;
        }

        for mount in &run.mounts {
            self.run_mount(state, index, instruction, mount, &mut inputs, &mut mounts).await?;
        }

        let mut env: Vec<String> = state.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !state.env.iter().any(|(k, _)| k == "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let proxy_env = proxy_env(&self.options.build_args, &state.env);
        let network = match run.network {
            NetworkMode::Default => self.options.network,
            explicit => explicit,
        };
        // privileged only with the `security.insecure` entitlement (the build checks it)
        let sandbox = crate::graph::ExecSandbox {
            insecure: run.security == parser::SecurityMode::Insecure,
            ..self.options.sandbox.clone()
        };
        let exec = crate::graph::ExecOp {
            args: args.clone(),
            env,
            proxy_env,
            cwd: state.workdir(),
            user: state.user(),
            // BuildKit's frontend option: the build-arg sets every RUN's hostname
            hostname: self
                .options
                .build_args
                .get("BUILDKIT_SANDBOX_HOSTNAME")
                .filter(|name| !name.is_empty())
                .cloned(),
            network,
            mounts,
            sandbox,
        };
        let metadata = self.step_metadata(state, &instruction.location, &text);
        state.fs = self.graph.add_output(Op::Exec(exec), inputs.0, metadata)?;

        // history: `RUN [|n K=V…] argv… # buildkit`
        let mut parts = Vec::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        for (name, value) in &state.build_args {
            let current = state
                .env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| value.clone().unwrap_or_default());
            match seen.iter_mut().find(|(k, _)| k == name) {
                Some(entry) => entry.1 = current,
                None => seen.push((name.clone(), current)),
            }
        }
        if !seen.is_empty() {
            parts.push(format!("|{}", seen.len()));
            parts.extend(seen.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(args);
        state.history(format!("RUN {} # buildkit", parts.join(" ")), false, self.epoch);
        Ok(())
    }

    async fn run_mount(
        &mut self,
        state: &StageState,
        index: usize,
        instruction: &Instruction,
        mount: &parser::mount::Mount,
        inputs: &mut Inputs,
        mounts: &mut Vec<Mount>,
    ) -> Result<(), FrontendError> {
        let env = state.env.clone();
        let escape = self.dockerfile.escape;
        let expander = |word: &str| parser::shell::expand_word(word, &env, escape).map_err(|e| e.to_string());
        let mount = parser::mount::Mount::parse(&mount.raw, Some(&expander))
            .map_err(|message| self.error_at(instruction, format!("invalid --mount: {message}")))?;
        let workdir = state.workdir();
        let absolute =
            |p: &str| clean(&if p.starts_with('/') { p.to_owned() } else { format!("{workdir}/{p}") });
        let target = mount.target.as_deref().map(absolute);
        if target.as_deref() == Some("/") {
            return Err(self.error_at(instruction, "invalid mount target \"/\""));
        }
        let from = match &mount.from {
            Some(from) => Some(self.mount_source(state, index, instruction, from).await?),
            None => None,
        };
        let entry = match mount.mount_type {
            MountType::Bind => {
                let Some(dest) = target else {
                    return Err(self.error_at(instruction, "invalid --mount: mount target is required"));
                };
                let source = match from {
                    Some(input) => input,
                    None => {
                        self.read_context_path(mount.source.as_deref());
                        self.context()?
                    }
                };
                let selector = mount.source.as_deref().map(|s| clean(&format!("/{s}"))).unwrap_or_default();
                Mount {
                    input: Some(inputs.index(source)),
                    selector: if selector == "/" { String::new() } else { selector },
                    dest,
                    output: None,
                    readonly: mount.read_only,
                    kind: MountKind::Bind,
                }
            }
            MountType::Cache => {
                let Some(dest) = target else {
                    return Err(self.error_at(instruction, "invalid --mount: mount target is required"));
                };
                let sharing = match mount.sharing {
                    None | Some(parser::mount::Sharing::Shared) => CacheSharing::Shared,
                    Some(parser::mount::Sharing::Private) => CacheSharing::Private,
                    Some(parser::mount::Sharing::Locked) => CacheSharing::Locked,
                };
                // BuildKit: the id defaults to the target as written, cleaned
                let raw_target = mount.target.clone().unwrap_or_default();
                let default_id = if raw_target.starts_with('/') {
                    clean(&raw_target)
                } else {
                    clean(&format!("/{raw_target}")).trim_start_matches('/').to_owned()
                };
                let id = mount.id.clone().filter(|i| !i.is_empty()).unwrap_or(default_id);
                let (input, selector) = match from {
                    Some(input) => (
                        Some(inputs.index(input)),
                        mount.source.as_deref().map(|s| clean(&format!("/{s}"))).unwrap_or_default(),
                    ),
                    None => (None, String::new()),
                };
                Mount {
                    input,
                    selector: if selector == "/" { String::new() } else { selector },
                    dest,
                    output: None,
                    readonly: mount.read_only,
                    kind: MountKind::Cache(CacheMount {
                        id,
                        sharing,
                        uid: mount.uid,
                        gid: mount.gid,
                        mode: Some(mount.mode.unwrap_or(0o755)),
                    }),
                }
            }
            MountType::Tmpfs => {
                let Some(dest) = target else {
                    return Err(self.error_at(instruction, "invalid --mount: mount target is required"));
                };
                Mount {
                    input: None,
                    selector: String::new(),
                    dest,
                    output: None,
                    readonly: false,
                    kind: MountKind::Tmpfs(TmpfsMount { size: mount.size_limit }),
                }
            }
            MountType::Secret => {
                let id = match (&mount.id, &target) {
                    (Some(id), _) if !id.is_empty() => id.clone(),
                    (_, Some(target)) => target.rsplit('/').next().unwrap_or_default().to_owned(),
                    _ => {
                        return Err(self
                            .error_at(instruction, "invalid --mount: secret mount needs an id or a target"));
                    }
                };
                if mount.required && !self.options.secrets.contains(&id) {
                    self.warnings.push(Warning {
                        message: format!("secret {id} is required but was not provided"),
                        line: Some(instruction.location.start_line),
                    });
                }
                // with env= and no target the secret is only a variable (no file)
                let dest = match (target, &mount.env) {
                    (Some(target), _) => target,
                    (None, Some(_)) => String::new(),
                    (None, None) => format!("/run/secrets/{id}"),
                };
                Mount {
                    input: None,
                    selector: String::new(),
                    dest,
                    output: None,
                    readonly: true,
                    kind: MountKind::Secret(SecretMount {
                        id,
                        env: mount.env.clone(),
                        uid: mount.uid.unwrap_or(0),
                        gid: mount.gid.unwrap_or(0),
                        mode: mount.mode.unwrap_or(0o400),
                        optional: !mount.required,
                    }),
                }
            }
            MountType::Ssh => {
                let id = mount.id.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| "default".into());
                let ssh_index = mounts.iter().filter(|m| matches!(m.kind, MountKind::Ssh(_))).count();
                Mount {
                    input: None,
                    selector: String::new(),
                    dest: target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_index}")),
                    output: None,
                    readonly: true,
                    kind: MountKind::Ssh(SshMount {
                        id,
                        uid: mount.uid.unwrap_or(0),
                        gid: mount.gid.unwrap_or(0),
                        mode: mount.mode.unwrap_or(0o600),
                        optional: !mount.required,
                    }),
                }
            }
        };
        mounts.push(entry);
        Ok(())
    }

    /// The filesystem a `from=` names: an earlier stage, or an image.
    async fn mount_source(
        &mut self,
        state: &StageState,
        index: usize,
        instruction: &Instruction,
        from: &str,
    ) -> Result<Input, FrontendError> {
        if let Some(other) = self.stage_reference(from, usize::MAX) {
            return match self.results.get(other).cloned().flatten() {
                Some(result) if other < index => Ok(result.fs),
                _ => Err(self.error_at(
                    instruction,
                    format!(
                        "cannot use stage {from:?} here: it needs to be defined before the current stage {:?}",
                        state.display
                    ),
                )),
            };
        }
        if from.parse::<usize>().is_ok() {
            return Err(
                self.error_at(instruction, format!("invalid from flag value {from}: index out of bounds"))
            );
        }
        // a named context of that name (an image one resolves like the image)
        let named = match self.named_context(from, &state.platform) {
            Some((_, NamedContext::Image { reference })) if reference != "scratch" => Some(reference),
            Some((name, context)) => return self.named_context_input(&name, &context),
            None => None,
        };
        let from = named.as_deref().unwrap_or(from);
        let resolved =
            self.resolutions.resolve(from, &state.platform, &instruction_location(instruction)).await?;
        let source =
            ImageSource { reference: resolved.reference.clone(), platform: Some(state.platform.clone()) };
        let metadata = VertexMetadata {
            description: Some(format!(
                "[{}] FROM {}",
                if state.display.is_empty() { "internal" } else { &state.display },
                resolved.reference
            )),
            ignore_cache: state.ignore_cache,
            ..VertexMetadata::default()
        };
        Ok(self.graph.add_output(Op::Source(SourceOp::Image(source)), Vec::new(), metadata)?)
    }
}

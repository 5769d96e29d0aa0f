//! `COPY` and `ADD`: context/stage/image/URL sources, heredoc sources, `--link`.

use parser::{Instruction, SourcesAndDest};

use super::dispatch::{StageState, instruction_location};
use super::format::{clean, join_keep_slash, parse_chmod, parse_chown};
use super::plan::Lowerer;
use super::{FrontendError, ImageResolver, NamedContext};
use crate::graph::{
    Chmod, CopyAction, FileAction, FileOp, HttpSource, ImageSource, Input, MergeOp, MkfileAction, Op,
    SourceOp, VertexMetadata,
};

/// COPY and ADD, seen the same way.
pub(super) struct CopySpec<'a> {
    add: bool,
    paths: &'a SourcesAndDest,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    link: bool,
    parents: bool,
    excludes: &'a [String],
    checksum: Option<&'a str>,
    unpack: Option<bool>,
}

impl<'a> From<&'a parser::Copy> for CopySpec<'a> {
    fn from(copy: &'a parser::Copy) -> CopySpec<'a> {
        CopySpec {
            add: false,
            paths: &copy.paths,
            from: copy.from.as_deref(),
            chown: copy.chown.as_deref(),
            chmod: copy.chmod.as_deref(),
            link: copy.link,
            parents: copy.parents,
            excludes: &copy.excludes,
            checksum: None,
            unpack: None,
        }
    }
}

impl<'a> From<&'a parser::Add> for CopySpec<'a> {
    fn from(add: &'a parser::Add) -> CopySpec<'a> {
        CopySpec {
            add: true,
            paths: &add.paths,
            from: None,
            chown: add.chown.as_deref(),
            chmod: add.chmod.as_deref(),
            link: add.link,
            parents: false,
            excludes: &add.excludes,
            checksum: add.checksum.as_deref(),
            unpack: add.unpack,
        }
    }
}

fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

fn is_git(src: &str) -> bool {
    src.starts_with("git@") || src.starts_with("git://") || src.ends_with(".git") && is_url(src)
}

/// The file name BuildKit gives a download (`__unnamed__` when the URL path has none).
fn url_filename(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && path.trim_end_matches('/') == path => base.to_owned(),
        _ => "__unnamed__".to_owned(),
    }
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    pub(super) async fn copy(
        &mut self,
        state: &mut StageState,
        index: usize,
        instruction: &Instruction,
        spec: CopySpec<'_>,
        onbuild: bool,
    ) -> Result<(), FrontendError> {
        let keyword = if spec.add { "ADD" } else { "COPY" };
        let env = state.env.clone();
        let dest_raw = self.expand_at(&spec.paths.destination, &env, instruction)?;
        let dest = join_keep_slash(&state.workdir(), &dest_raw);
        let mut sources = Vec::new();
        for src in &spec.paths.sources {
            sources.push(self.expand_at(src, &env, instruction)?);
        }
        let count = sources.len() + spec.paths.contents.len();
        if count > 1 && !dest.ends_with('/') {
            return Err(self.error_at(
                instruction,
                format!("When using {keyword} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        let chown = match spec.chown {
            Some(raw) => Some(self.expand_at(raw, &env, instruction)?),
            None => None,
        };
        let owner = match &chown {
            Some(value) => Some(parse_chown(value).map_err(|m| self.error_at(instruction, m))?),
            None => None,
        };
        let chmod = match spec.chmod {
            Some(raw) => Some(self.expand_at(raw, &env, instruction)?),
            None => None,
        };
        let mode = match &chmod {
            Some(value) => Some(parse_chmod(value).map_err(|m| self.error_at(instruction, m))?),
            None => None,
        };
        let checksum = match spec.checksum {
            Some(raw) => Some(self.expand_at(raw, &env, instruction)?),
            None => None,
        };
        if let Some(checksum) = &checksum {
            if sources.len() != 1 {
                return Err(self.error_at(instruction, "checksum can't be specified for multiple sources"));
            }
            if !is_url(&sources[0]) {
                return Err(self.error_at(instruction, "checksum requires HTTP(S) or Git sources"));
            }
            if let Some(problem) = checksum_problem(checksum) {
                return Err(self.error_at(instruction, format!("{problem}: {checksum}")));
            }
        }
        let mut excludes = Vec::new();
        for pattern in spec.excludes {
            excludes.push(self.expand_at(pattern, &env, instruction)?);
        }

        // where local sources come from
        let from_source = match spec.from {
            Some(from) => {
                self.check_copy_from(from, instruction)?;
                Some(self.copy_from(state, index, instruction, from).await?)
            }
            None => None,
        };

        let text = self.onbuild_prefix(onbuild, &self.progress_text(state, &instruction.original));
        let metadata = self.step_metadata(state, &instruction.location, &text);
        let base_input = if spec.link && mode.is_none() { None } else { Some(state.fs.clone()) };
        let mut inputs: Vec<Input> = base_input.iter().cloned().collect();
        let input_index = |inputs: &mut Vec<Input>, input: Input| -> u32 {
            match inputs.iter().position(|i| *i == input) {
                Some(pos) => pos as u32,
                None => {
                    inputs.push(input);
                    (inputs.len() - 1) as u32
                }
            }
        };
        let mut actions = Vec::new();
        let mut message = String::from(keyword);
        if spec.parents {
            message.push_str(" --parents");
        }
        if let Some(chown) = &chown {
            message.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = &chmod {
            message.push_str(&format!(" --chmod={chmod}"));
        }
        for src in &sources {
            message.push_str(&format!(" {src}"));
            if from_source.is_none() && is_git(src) {
                return Err(self.error_at(
                    instruction,
                    format!("{keyword} of a git repository is not supported: {src}"),
                ));
            }
            if from_source.is_none() && is_url(src) {
                if !spec.add {
                    return Err(self.error_at(instruction, "source can't be a URL for COPY"));
                }
                let filename = url_filename(src);
                let http = HttpSource {
                    url: src.clone(),
                    checksum: checksum.clone(),
                    filename: Some(filename.clone()),
                    mode: None,
                };
                let source =
                    self.graph.add_output(Op::Source(SourceOp::Http(http)), Vec::new(), metadata.clone())?;
                let mut action =
                    CopyAction::new(input_index(&mut inputs, source), format!("/{filename}"), dest.clone());
                action.owner = owner.clone();
                action.mode = mode.clone();
                action.create_dest_path = true;
                action.attempt_unpack_archive = spec.unpack.unwrap_or(false);
                action.exclude_patterns = excludes.clone();
                action.timestamp = self.epoch;
                actions.push(FileAction::Copy(action));
                continue;
            }
            let source = match &from_source {
                Some(input) => input.clone(),
                None => {
                    if !onbuild {
                        self.lint_copy_source(instruction, spec.add, src);
                    }
                    self.read_context_path(Some(src));
                    self.context()?
                }
            };
            let (path, include) = if spec.parents {
                match src.split_once("/./") {
                    Some((parent, pattern)) => (clean(&format!("/{parent}")), clean(&format!("/{pattern}"))),
                    None => ("/".to_owned(), clean(&format!("/{src}"))),
                }
            } else {
                (clean(&format!("/{src}")), String::new())
            };
            let mut action = CopyAction::new(input_index(&mut inputs, source), path, dest.clone());
            action.owner = owner.clone();
            action.mode = mode.clone();
            action.follow_symlinks = true;
            action.copy_dir_contents = true;
            action.attempt_unpack_archive = spec.add && spec.unpack.unwrap_or(true);
            action.create_dest_path = true;
            action.allow_wildcard = true;
            action.allow_empty_wildcard = true;
            action.parents = spec.parents;
            if spec.parents {
                action.include_patterns = vec![include.trim_start_matches('/').to_owned()];
            }
            action.exclude_patterns = excludes.clone();
            action.timestamp = self.epoch;
            actions.push(FileAction::Copy(action));
        }
        for content in &spec.paths.contents {
            message.push_str(&format!(" <<{}", content.path));
            let data = if content.expand {
                // quotes belong to the file; only variables (and `\` escapes) are processed
                parser::shell::expand_heredoc(&content.data, &env)
                    .map_err(|source| FrontendError::Expand {
                        location: instruction_location(instruction),
                        source: Box::new(source),
                    })?
                    .value
            } else {
                content.data.clone()
            };
            let path = if dest.ends_with('/') { format!("{dest}{}", content.path) } else { dest.clone() };
            actions.push(FileAction::Mkfile(MkfileAction {
                path: clean(&path),
                mode: mode.as_ref().map_or(0o644, |m| m.apply(0o644, false)),
                data: data.into_bytes(),
                make_parents: Some(mode.as_ref().and_then(Chmod::octal).unwrap_or(0o755)),
                owner: owner.clone(),
                timestamp: self.epoch,
            }));
        }
        message.push_str(&format!(" {dest_raw}"));
        if actions.is_empty() {
            return Err(self.error_at(instruction, format!("{keyword} requires at least one source")));
        }

        match base_input {
            Some(_) => {
                let op = Op::File(FileOp { base: Some(0), actions });
                state.fs = self.graph.add_output(op, inputs, metadata)?;
            }
            None => {
                // --link: copy onto scratch, then stack it on the previous state
                let op = Op::File(FileOp { base: None, actions });
                let layer = self.graph.add_output(op, inputs, metadata.clone())?;
                let mut merge_metadata = metadata;
                if let Some(description) = &mut merge_metadata.description
                    && let Some(pos) = description.find("] ")
                {
                    description.insert_str(pos + 2, "LINK ");
                }
                state.fs = self.graph.add_output(
                    Op::Merge(MergeOp {}),
                    vec![state.fs.clone(), layer],
                    merge_metadata,
                )?;
            }
        }
        state.history(format!("{message} # buildkit"), false, self.epoch);
        Ok(())
    }

    /// `COPY --from=`: an earlier stage (by name or index) or an image.
    async fn copy_from(
        &mut self,
        state: &StageState,
        index: usize,
        instruction: &Instruction,
        from: &str,
    ) -> Result<Input, FrontendError> {
        if let Some(other) = self.stage_reference(from, usize::MAX) {
            if other == index {
                return Err(
                    self.error_at(instruction, format!("circular dependency detected on stage: {from}"))
                );
            }
            return match self.results.get(other).cloned().flatten() {
                Some(result) if other < index => Ok(result.fs),
                _ => Err(self.error_at(
                    instruction,
                    format!(
                        "cannot copy from stage {from:?}, it needs to be defined before current stage {:?}",
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
        let location = instruction_location(instruction);
        let resolved = self.resolutions.resolve(from, &state.platform, &location).await?;
        let source =
            ImageSource { reference: resolved.reference.clone(), platform: Some(state.platform.clone()) };
        let metadata = VertexMetadata {
            description: Some(format!("[internal] FROM {}", resolved.reference)),
            ignore_cache: state.ignore_cache,
            ..VertexMetadata::default()
        };
        Ok(self.graph.add_output(Op::Source(SourceOp::Image(source)), Vec::new(), metadata)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_filenames() {
        assert_eq!(url_filename("https://example.com/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_filename("https://example.com/"), "__unnamed__");
        assert_eq!(url_filename("https://example.com"), "__unnamed__");
        assert!(is_git("https://github.com/moby/buildkit.git"));
        assert!(!is_git("https://example.com/x"));
    }
}

/// What is wrong with an `ADD --checksum` digest, in the order and words of the OCI digest library
/// BuildKit uses: no `algorithm:` prefix is a format error, a well-formed digest of another
/// algorithm (`md5:…`) is unsupported, a supported one must have its exact hex length.
fn checksum_problem(checksum: &str) -> Option<&'static str> {
    const INVALID_FORMAT: &str = "invalid checksum digest format";
    let Some((algorithm, encoded)) = checksum.split_once(':').filter(|(a, e)| !a.is_empty() && !e.is_empty())
    else {
        return Some(INVALID_FORMAT);
    };
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            let algorithm_ok = algorithm.split(['.', '+', '_', '-']).all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
            let encoded_ok = encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b));
            return Some(if algorithm_ok && encoded_ok {
                "unsupported digest algorithm"
            } else {
                INVALID_FORMAT
            });
        }
    };
    if encoded.len() != hex_len {
        return Some("invalid checksum digest length");
    }
    if !encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Some(INVALID_FORMAT);
    }
    None
}

#[cfg(test)]
mod checksum_tests {
    use super::checksum_problem;

    #[test]
    fn checksums_are_judged_as_the_oci_digest_library_does() {
        let sha256 = format!("sha256:{}", "a".repeat(64));
        let cases: &[(&str, Option<&str>)] = &[
            (&sha256, None),
            (&format!("sha512:{}", "0".repeat(128)), None),
            ("d0b425e00e15a0d36b9b361f02bab635", Some("invalid checksum digest format")),
            (":abc", Some("invalid checksum digest format")),
            ("sha256:", Some("invalid checksum digest format")),
            ("md5:7e55db001d319a94b0b713529a756623", Some("unsupported digest algorithm")),
            ("unknown:d0b4", Some("unsupported digest algorithm")),
            ("Unknown:d0b4", Some("invalid checksum digest format")),
            ("sha256:abc", Some("invalid checksum digest length")),
            (&format!("sha256:{}", "G".repeat(64)), Some("invalid checksum digest format")),
        ];
        for (input, want) in cases {
            assert_eq!(checksum_problem(input), *want, "{input}");
        }
    }
}

//! The data of the BuildKit frontend test port (`testdata/buildkit-port/`): `case.toml` files,
//! `FUNCTIONS.txt`, `SKIPPED.md` and the `known-failures` block of `KNOWN-DIFFERENCES.md`, and the
//! consistency checks between them (format: `testdata/buildkit-port/README.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub fn port_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-port")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub test: String,
    pub file: String,
    pub summary: String,
    #[serde(default)]
    pub passwd: Vec<String>,
    #[serde(default)]
    pub group: Vec<String>,
    #[serde(default, rename = "build")]
    pub builds: Vec<Build>,
    #[serde(default)]
    pub serve: Vec<Serve>,
}

/// A route of the case's HTTP server (`{{server}}` in Dockerfiles, `{server}` in args).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    pub path: String,
    /// The body: a file of the case dir, or text.
    pub file: Option<String>,
    pub content: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_disposition: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    #[default]
    Local,
    /// `-o type=tar,dest=out-N.tar`, extracted into `out-N` for the checks.
    Tar,
    /// `-o type=oci,dest=out-N.tar`, extracted into `out-N` (checks, `[[build.config]] file`).
    Oci,
    Image,
    None,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

fn default_dockerfile() -> String {
    "Dockerfile".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// No `-f`: kiln finds the Dockerfile in the context itself.
    #[serde(default)]
    pub no_file_flag: bool,
    /// Run kiln in the context dir, with `.` as the context (and `-f` relative to it).
    #[serde(default)]
    pub cwd_context: bool,
    /// The context as a tar on stdin (`kiln build -`), made from the (edited) context copy.
    #[serde(default)]
    pub stdin_context: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub error_contains: Vec<String>,
    #[serde(default)]
    pub progress_contains: Vec<String>,
    #[serde(default)]
    pub no_cache: bool,
    /// Seconds to wait before this build (for tests that need the clock to move).
    pub sleep_before: Option<u64>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub mkdir: Vec<String>,
    #[serde(default)]
    pub write: BTreeMap<String, String>,
    #[serde(default)]
    pub append: BTreeMap<String, String>,
    #[serde(default)]
    pub symlink: BTreeMap<String, String>,
    #[serde(default)]
    pub chmod: BTreeMap<String, String>,
    /// Unix sockets to create (git keeps none).
    #[serde(default)]
    pub socket: Vec<String>,
    pub cached_steps_min: Option<usize>,
    pub cached_steps_max: Option<usize>,
    pub ran_steps_min: Option<usize>,
    pub ran_steps_max: Option<usize>,
    /// output = "image": the image (manifest) digest equals that of an earlier image build.
    pub digest_same_as_build: Option<usize>,
    /// The exact requests (`GET /foo`) the case's server gets during this build.
    pub requests: Option<Vec<String>>,
    #[serde(default, rename = "check")]
    pub checks: Vec<Check>,
    #[serde(default, rename = "config")]
    pub configs: Vec<ConfigCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub path: String,
    pub content: Option<String>,
    pub contains: Option<String>,
    pub not_contains: Option<String>,
    pub absent: Option<bool>,
    pub exists: Option<bool>,
    pub kind: Option<Kind>,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub symlink: Option<String>,
    pub files: Option<Vec<String>>,
    /// The content equals (or differs from) the same path in the output of an earlier build.
    pub same_as_build: Option<usize>,
    pub differs_from_build: Option<usize>,
    /// The content equals this file of the case dir (binary).
    pub equals_file: Option<String>,
    /// Modification time, seconds since the epoch.
    pub mtime: Option<i64>,
    /// The same inode (a hard link) as this other exported path.
    pub hardlink_of: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCheck {
    /// A JSON file of the exported output (output "local", "tar" or "oci") instead of the image config.
    pub file: Option<String>,
    pub pointer: String,
    /// Present and not null, "", [] or {}.
    pub nonempty: Option<bool>,
    pub equals: Option<toml::Value>,
    pub contains: Option<String>,
    pub absent: Option<bool>,
}

/// A case directory: its name, path and parsed `case.toml`.
#[derive(Debug)]
pub struct CaseDir {
    pub name: String,
    pub dir: PathBuf,
    pub case: Case,
}

/// A context-relative path from a case file; absolute paths and `..` are refused.
pub fn relative(path: &str) -> Result<&Path, String> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if ok { Ok(p) } else { Err(format!("path {path:?} must be relative, without `..`")) }
}

pub fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {mode:?} is not an octal permission string like \"0644\""))
}

/// Every problem of one case file that can be seen without building.
fn validate(name: &str, dir: &Path, case: &Case) -> Vec<String> {
    let mut errors = Vec::new();
    let base = name.split_once("--").map_or(name, |(base, n)| {
        if n.parse::<u32>().map_or(true, |n| n < 2) {
            errors.push(format!("suffix of {name:?} must be `--N` with N >= 2"));
        }
        base
    });
    if base != case.test {
        errors.push(format!("directory name {name:?} does not match test = {:?}", case.test));
    }
    if case.summary.trim().is_empty() || case.summary.contains('\n') {
        errors.push("summary must be one non-empty line".to_owned());
    }
    for route in &case.serve {
        if !route.path.starts_with('/') {
            errors.push(format!("serve path {:?} must start with /", route.path));
        }
        match (&route.file, &route.content) {
            (Some(file), None) if dir.join(file).is_file() => {}
            (Some(file), None) => errors.push(format!("serve {}: no file {file}", route.path)),
            (None, Some(_)) => {}
            _ => errors.push(format!("serve {}: needs exactly one of file, content", route.path)),
        }
    }
    if case.builds.is_empty() {
        errors.push("no [[build]]".to_owned());
    }
    for (i, b) in case.builds.iter().enumerate() {
        let n = i + 1;
        let mut err = |e: String| errors.push(format!("build {n}: {e}"));
        match b.dockerfile.strip_prefix("context/") {
            Some(_) => {} // inside the (edited) context copy: checked when it runs
            None if b.no_file_flag => {}
            None if !dir.join(&b.dockerfile).is_file() => err(format!("no file {}", b.dockerfile)),
            None => {}
        }
        if b.stdin_context && b.cwd_context {
            err("stdin_context and cwd_context exclude each other".to_owned());
        }
        if b.no_file_flag && b.dockerfile != "Dockerfile" {
            err("no_file_flag takes the context's Dockerfile: leave `dockerfile` unset".to_owned());
        }
        if b.requests.is_some() && case.serve.is_empty() {
            err("requests needs [[serve]] routes".to_owned());
        }
        if b.expect == Expect::Success && !b.error_contains.is_empty() {
            err("error_contains needs expect = \"failure\"".to_owned());
        }
        if !matches!(b.output, Output::Local | Output::Tar | Output::Oci) && !b.checks.is_empty() {
            err("[[build.check]] needs output = \"local\", \"tar\" or \"oci\"".to_owned());
        }
        if let Some(earlier) = b.digest_same_as_build {
            let image =
                |k: usize| case.builds.get(k.wrapping_sub(1)).is_some_and(|e| e.output == Output::Image);
            if b.output != Output::Image || earlier >= n || !image(earlier) {
                err(format!(
                    "digest_same_as_build = {earlier} needs this and that earlier build output = \"image\""
                ));
            }
        }
        for c in &b.configs {
            match (b.output, &c.file) {
                (Output::Image, None) | (Output::Local | Output::Tar | Output::Oci, Some(_)) => {}
                _ => err(format!(
                    "[[build.config]] {} needs output = \"image\", or `file` with output local, tar or oci",
                    c.pointer
                )),
            }
        }
        if b.expect == Expect::Failure && (!b.checks.is_empty() || !b.configs.is_empty()) {
            err("a failing build has no output to check".to_owned());
        }
        let paths = b.remove.iter().chain(&b.mkdir).chain(b.write.keys()).chain(b.append.keys());
        for p in paths.chain(b.symlink.keys()).chain(b.chmod.keys()).chain(&b.socket) {
            if let Err(e) = relative(p) {
                err(e);
            }
        }
        for m in b.chmod.values() {
            if let Err(e) = parse_mode(m) {
                err(e);
            }
        }
        for c in &b.checks {
            if let Some(e) = Some(&c.path).filter(|p| *p != ".").and_then(|p| relative(p).err()) {
                err(e);
            }
            if let Some(e) = c.mode.as_deref().and_then(|m| parse_mode(m).err()) {
                err(e);
            }
            let asserts = [
                c.content.is_some(),
                c.contains.is_some(),
                c.not_contains.is_some(),
                c.absent.is_some(),
                c.exists.is_some(),
                c.kind.is_some(),
                c.mode.is_some(),
                c.owner.is_some(),
                c.symlink.is_some(),
                c.files.is_some(),
                c.same_as_build.is_some(),
                c.differs_from_build.is_some(),
                c.equals_file.is_some(),
                c.mtime.is_some(),
                c.hardlink_of.is_some(),
            ];
            if let Some(file) = c.equals_file.as_ref().filter(|f| !dir.join(f).is_file()) {
                err(format!("check of {:?}: no file {file}", c.path));
            }
            for earlier in [c.same_as_build, c.differs_from_build].into_iter().flatten() {
                if earlier == 0 || earlier >= n {
                    err(format!("check of {:?} compares with build {earlier}, not an earlier one", c.path));
                }
            }
            if !asserts.contains(&true) {
                err(format!("check of {:?} asserts nothing", c.path));
            }
        }
        for c in &b.configs {
            if !c.pointer.is_empty() && !c.pointer.starts_with('/') {
                err(format!("config pointer {:?} must start with `/`", c.pointer));
            }
            if c.equals.is_none() && c.contains.is_none() && c.absent.is_none() && c.nonempty.is_none() {
                err(format!("config check of {:?} asserts nothing", c.pointer));
            }
        }
    }
    errors
}

/// All case directories, sorted by name, or every problem found in them.
pub fn load_cases() -> Result<Vec<CaseDir>, Vec<String>> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let entries =
        std::fs::read_dir(port_dir()).map_err(|e| vec![format!("{}: {e}", port_dir().display())])?;
    for entry in entries {
        let entry = entry.map_err(|e| vec![e.to_string()])?;
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let parsed = std::fs::read_to_string(dir.join("case.toml"))
            .map_err(|e| e.to_string())
            .and_then(|text| toml::from_str::<Case>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(case) => {
                errors.extend(validate(&name, &dir, &case).into_iter().map(|e| format!("{name}: {e}")));
                cases.push(CaseDir { name, dir, case });
            }
            Err(e) => errors.push(format!("{name}/case.toml: {e}")),
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    if errors.is_empty() { Ok(cases) } else { Err(errors) }
}

/// `FUNCTIONS.txt`: `file:function` lines.
pub fn functions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(port_dir().join("FUNCTIONS.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':').map(|(f, t)| (f.to_owned(), t.to_owned())))
        .collect()
}

/// `SKIPPED.md` rows `| Go test | file | reason |` as `(file, function) -> reason`.
pub fn skipped() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(port_dir().join("SKIPPED.md")).unwrap_or_default();
    let mut rows = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with('|')) {
        let cells: Vec<String> =
            line.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').trim().to_owned()).collect();
        if cells.len() < 3
            || cells[0] == "Go test"
            || cells[0].starts_with("---")
            || cells[0].starts_with(":-")
        {
            continue;
        }
        rows.insert((cells[1].clone(), cells[0].clone()), cells[2..].join("|"));
    }
    rows
}

/// The ```known-failures block of `KNOWN-DIFFERENCES.md`: case directory → reason.
pub fn known_failures() -> Result<BTreeMap<String, String>, Vec<String>> {
    let text = std::fs::read_to_string(port_dir().join("KNOWN-DIFFERENCES.md")).unwrap_or_default();
    let mut known = BTreeMap::new();
    let mut errors = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "```known-failures" {
            inside = true;
        } else if inside && trimmed.starts_with("```") {
            inside = false;
        } else if inside && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let (case, reason) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
            if reason.trim().is_empty() {
                errors.push(format!("known failure {case} has no reason"));
            }
            if known.insert(case.to_owned(), reason.trim().to_owned()).is_some() {
                errors.push(format!("known failure {case} listed twice"));
            }
        }
    }
    if errors.is_empty() { Ok(known) } else { Err(errors) }
}

/// Cross-checks of the data: every function covered, no stale or unknown names.
pub fn coverage_errors(cases: &[CaseDir]) -> Vec<String> {
    let mut errors = Vec::new();
    let functions: BTreeSet<(String, String)> = functions().into_iter().collect();
    if functions.is_empty() {
        errors.push("FUNCTIONS.txt is missing or empty".to_owned());
    }
    let skipped = skipped();
    let ported: BTreeSet<(String, String)> =
        cases.iter().map(|c| (c.case.file.clone(), c.case.test.clone())).collect();
    for c in cases {
        if !functions.contains(&(c.case.file.clone(), c.case.test.clone())) {
            errors.push(format!("{}: {}:{} is not in FUNCTIONS.txt", c.name, c.case.file, c.case.test));
        }
    }
    for ((file, test), reason) in &skipped {
        if !functions.contains(&(file.clone(), test.clone())) {
            errors.push(format!("SKIPPED.md: {file}:{test} is not in FUNCTIONS.txt"));
        }
        if reason.trim().is_empty() {
            errors.push(format!("SKIPPED.md: {file}:{test} has no reason"));
        }
    }
    for key in &functions {
        if !ported.contains(key) && !skipped.contains_key(key) {
            errors.push(format!("{}:{} is neither a case directory nor a SKIPPED.md row", key.0, key.1));
        }
    }
    match known_failures() {
        Ok(known) => {
            let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
            for case in known.keys().filter(|k| !names.contains(k.as_str())) {
                errors.push(format!("KNOWN-DIFFERENCES.md lists {case}, which is not a case directory"));
            }
        }
        Err(e) => errors.extend(e),
    }
    errors
}

//! Golden tests of the Dockerfile frontend: `testdata/frontend/<case>/Dockerfile` (+ optional
//! `options.json`) → `graph.json` (the definition with digests), `config.json` (the image
//! config with the Docker-only fields merged), `warnings.json`; or `error.txt` for cases that
//! must fail. `KILN_BLESS=1` rewrites the expected files (review them against BuildKit; refused
//! when `CI=true`). An `error.txt` next to any success output (or the reverse) is stale and fails.
//!
//! Base images come from a fake resolver whose configs are built here (no store, no network).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use solver::frontend::{FrontendOptions, ImageResolver, NamedContext, ResolveError, ResolvedImage, lower};
use solver::graph::{NetworkMode, Op, Platform, SourceOp};

/// Resolves a few made-up images; records what was asked.
#[derive(Default)]
struct FakeResolver {
    asked: Mutex<Vec<String>>,
}

fn fake_digest(name: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(name.as_bytes())))
}

fn config_json(name: &str) -> Option<serde_json::Value> {
    let history = serde_json::json!([
        {"created": "2024-01-01T00:00:00Z", "created_by": format!("/bin/sh -c #(nop) ADD file:{name} in / ")},
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true}
    ]);
    let rootfs = serde_json::json!({"type": "layers", "diff_ids": [fake_digest(&format!("layer-{name}"))]});
    let config = match name {
        "busybox" | "alpine" => serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        }),
        "python" => serde_json::json!({
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["python3"],
            "WorkingDir": "/srv",
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000u64}
        }),
        "onbuild" => serde_json::json!({
            "Env": ["PATH=/usr/bin:/bin"],
            "Cmd": ["sh"],
            "OnBuild": ["COPY app.txt /app/", "RUN echo triggered"]
        }),
        // docker's classic builder / `docker import`: Go nils everywhere
        "classic" => serde_json::json!({
            "Hostname": "", "User": "", "ExposedPorts": null, "Env": null, "Cmd": null,
            "Healthcheck": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
            "OnBuild": null, "Labels": null, "Shell": null
        }),
        _ => return None,
    };
    Some(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": rootfs,
        "history": history
    }))
}

impl ImageResolver for FakeResolver {
    async fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        self.asked.lock().unwrap().push(reference.to_owned());
        let parsed = registry::Reference::parse(reference)
            .map_err(|e| ResolveError { reference: reference.to_owned(), source: Box::new(e) })?;
        let name = parsed.to_string();
        let short = name.rsplit('/').next().unwrap_or_default().split(':').next().unwrap_or_default();
        let Some(json) = config_json(short) else {
            return Err(ResolveError {
                reference: reference.to_owned(),
                source: format!("{name}: not found").into(),
            });
        };
        let bytes = serde_json::to_vec(&json).unwrap();
        let pinned = format!("{name}@{}", fake_digest(&name));
        Ok(ResolvedImage::from_config_json(pinned, &bytes).unwrap())
    }
}

/// `options.json` of a case.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CaseOptions {
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    labels: BTreeMap<String, String>,
    no_cache: bool,
    no_cache_filter: Vec<String>,
    source_date_epoch: Option<i64>,
    dockerignore: Vec<String>,
    network: Option<String>,
    /// Images the resolver must not be asked for (pruned stages).
    never_resolved: Vec<String>,
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/frontend")
}

fn bless() -> bool {
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let ci = std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1");
    assert!(!(bless && ci), "KILN_BLESS=1 is refused when CI=true: bless goldens locally and commit them");
    bless
}

/// Outputs of a case that lowers successfully; `error.txt` is the output of one that fails.
const SUCCESS_FILES: &[&str] = &["graph.json", "config.json", "warnings.json"];

/// Expected files of the other outcome left in the case dir: removed when blessing, else failures.
fn stale(dir: &Path, files: &[&str], failures: &mut Vec<String>) {
    for file in files {
        let path = dir.join(file);
        if !path.exists() {
            continue;
        }
        if bless() {
            std::fs::remove_file(&path).unwrap();
        } else {
            failures.push(format!("{} is stale (the case's outcome changed)", path.display()));
        }
    }
}

fn check(file: &Path, actual: &str, failures: &mut Vec<String>) {
    if bless() {
        std::fs::write(file, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(file) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (KILN_BLESS=1 to update)\n--- expected\n{expected}\n--- actual\n{actual}",
            file.display()
        )),
        Err(e) => failures.push(format!("{}: {e} (run with KILN_BLESS=1 to create it)", file.display())),
    }
}

async fn run_case(dir: &Path, failures: &mut Vec<String>) {
    let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    let case: CaseOptions = match std::fs::read(dir.join("options.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => CaseOptions::default(),
    };
    let options = FrontendOptions {
        build_args: case.build_args,
        target: case.target,
        labels: case.labels,
        no_cache: case.no_cache,
        no_cache_filter: case.no_cache_filter,
        source_date_epoch: case.source_date_epoch,
        dockerignore: case.dockerignore,
        context_shared_key: "/ctx".into(),
        network: match case.network.as_deref() {
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            _ => NetworkMode::Default,
        },
        ..FrontendOptions::default()
    };
    let dockerfile = parser::parse(&text).unwrap_or_else(|e| panic!("{}: parse: {e}", dir.display()));
    let resolver = FakeResolver::default();
    let result = lower(&dockerfile, &options, &resolver).await;
    let asked = resolver.asked.lock().unwrap().clone();
    for image in &case.never_resolved {
        if asked.contains(image) {
            failures
                .push(format!("{}: resolver was asked for {image} (stage should be pruned)", dir.display()));
        }
    }
    let error_file = dir.join("error.txt");
    match result {
        Ok(plan) => {
            if error_file.exists() && !bless() {
                failures.push(format!("{}: expected an error, lowering succeeded", dir.display()));
                return;
            }
            stale(dir, &["error.txt"], failures);
            let graph = plan.definition.to_json_pretty().unwrap();
            check(&dir.join("graph.json"), &(graph + "\n"), failures);
            // the definition round-trips with its digests
            solver::graph::Definition::from_json(plan.definition.to_json_pretty().unwrap().as_bytes())
                .unwrap();
            let config = serde_json::to_string_pretty(&plan.config_json().unwrap()).unwrap();
            check(&dir.join("config.json"), &(config + "\n"), failures);
            let warnings = serde_json::to_string_pretty(&plan.warnings).unwrap();
            check(&dir.join("warnings.json"), &(warnings + "\n"), failures);
        }
        Err(error) => {
            let mut rendered = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(inner) = source {
                rendered.push_str(&format!("\ncaused by: {inner}"));
                source = inner.source();
            }
            if !error_file.exists() && !bless() {
                failures.push(format!("{}: lowering failed: {rendered}", dir.display()));
                return;
            }
            check(&error_file, &(rendered + "\n"), failures);
            stale(dir, SUCCESS_FILES, failures);
        }
    }
}

#[tokio::test]
async fn golden_cases() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "golden cases missing under {}", cases_dir().display());
    let mut failures = Vec::new();
    for dir in &dirs {
        run_case(dir, &mut failures).await;
    }
    assert!(failures.is_empty(), "{} golden failures:\n{}", failures.len(), failures.join("\n\n"));
}

/// Lowering is deterministic: the same input gives the same digests.
#[tokio::test]
async fn lowering_is_deterministic() {
    let text = std::fs::read_to_string(cases_dir().join("multistage/Dockerfile")).unwrap();
    let dockerfile = parser::parse(&text).unwrap();
    let options = FrontendOptions::default();
    let a = lower(&dockerfile, &options, &FakeResolver::default()).await.unwrap();
    let b = lower(&dockerfile, &options, &FakeResolver::default()).await.unwrap();
    assert_eq!(a.definition, b.definition);
    assert_eq!(a.target, b.target);
}

/// An edit that does not change a stage the target needs keeps the target's digest.
#[tokio::test]
async fn pruned_stage_edit_keeps_target_digest() {
    let base = "FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\n";
    let edited = "FROM busybox AS a\nRUN echo a2\nFROM busybox AS b\nRUN echo b\n";
    let options = FrontendOptions { target: Some("b".into()), ..FrontendOptions::default() };
    let one = lower(&parser::parse(base).unwrap(), &options, &FakeResolver::default()).await.unwrap();
    let two = lower(&parser::parse(edited).unwrap(), &options, &FakeResolver::default()).await.unwrap();
    assert_eq!(one.target, two.target);
    assert_eq!(one.definition.vertices.len(), 2);
}

/// Named build contexts as BuildKit looks them up: by the familiar name without `:latest`, the
/// `NAME::platform` key first; a stage of that name is replaced (its instructions not lowered);
/// contexts of stages the target does not need are never resolved.
#[tokio::test]
async fn named_contexts_replace_images_and_stages() {
    let image = |reference: &str| NamedContext::Image { reference: reference.into() };
    let text = "FROM nosuch AS unused\n\
                FROM docker.io/library/busybox:latest AS base\n\
                RUN echo never\n\
                FROM base\n\
                COPY --from=src / /src/\n\
                RUN --mount=from=python,target=/m true\n";
    let mut named = BTreeMap::new();
    named.insert("unused".to_owned(), image("nosuch-either"));
    named.insert("busybox".to_owned(), image("classic"));
    named.insert("busybox::linux/amd64".to_owned(), image("alpine"));
    named.insert("python".to_owned(), image("onbuild"));
    named.insert(
        "src".to_owned(),
        NamedContext::Local {
            source: "context:src".into(),
            excludes: vec!["x".into()],
            shared_key: "k".into(),
        },
    );
    let options = FrontendOptions { named_contexts: named.clone(), ..FrontendOptions::default() };
    let resolver = FakeResolver::default();
    let plan = lower(&parser::parse(text).unwrap(), &options, &resolver).await.unwrap();
    let asked = resolver.asked.lock().unwrap().clone();
    assert!(asked.iter().all(|r| r == "alpine" || r == "onbuild"), "{asked:?}");
    assert!(asked.iter().any(|r| r == "alpine") && asked.iter().any(|r| r == "onbuild"), "{asked:?}");
    let locals: Vec<_> = plan
        .definition
        .vertices
        .iter()
        .filter_map(|v| match &v.op {
            Op::Source(SourceOp::Local(local)) => Some(local.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(locals.len(), 1, "{locals:?}");
    assert_eq!(
        (locals[0].name.as_str(), locals[0].exclude_patterns.as_slice()),
        ("context:src", &["x".to_owned()][..])
    );

    // a stage that names a context is that context, whatever its base
    named.insert("base".to_owned(), image("python"));
    let options = FrontendOptions { named_contexts: named, ..FrontendOptions::default() };
    let resolver = FakeResolver::default();
    let plan = lower(&parser::parse(text).unwrap(), &options, &resolver).await.unwrap();
    let asked = resolver.asked.lock().unwrap().clone();
    assert!(asked.iter().any(|r| r == "python") && !asked.iter().any(|r| r == "alpine"), "{asked:?}");
    let descriptions: Vec<_> =
        plan.definition.vertices.iter().filter_map(|v| v.metadata.description.clone()).collect();
    assert!(!descriptions.iter().any(|d| d.contains("echo never")), "{descriptions:?}");
}

/// Errors carry the instruction's line and column.
#[tokio::test]
async fn errors_point_at_the_instruction() {
    let text = "FROM busybox\n\nRUN true\n  COPY --chown=a:b:c x /x\n";
    let error = lower(&parser::parse(text).unwrap(), &FrontendOptions::default(), &FakeResolver::default())
        .await
        .unwrap_err();
    let location = error.location().expect("location");
    assert_eq!((location.line, location.column), (4, 3));
    assert!(error.to_string().contains("invalid --chown"), "{error}");

    let error = lower(
        &parser::parse("FROM busybox AS a\n").unwrap(),
        &FrontendOptions { target: Some("nope".into()), ..FrontendOptions::default() },
        &FakeResolver::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.to_string(), "target stage \"nope\" could not be found");
}

/// ENTRYPOINT clears a CMD inherited from the base, keeps one set in the same stage.
#[tokio::test]
async fn entrypoint_resets_only_inherited_cmd() {
    let options = FrontendOptions::default();
    let inherited = lower(
        &parser::parse("FROM busybox\nENTRYPOINT [\"x\"]\n").unwrap(),
        &options,
        &FakeResolver::default(),
    )
    .await
    .unwrap();
    let config = inherited.image.config().clone().unwrap();
    assert_eq!(config.cmd(), &None);
    let own = lower(
        &parser::parse("FROM busybox\nCMD [\"y\"]\nENTRYPOINT [\"x\"]\n").unwrap(),
        &options,
        &FakeResolver::default(),
    )
    .await
    .unwrap();
    assert_eq!(own.image.config().clone().unwrap().cmd(), &Some(vec!["y".to_owned()]));
}

/// Every instruction vertex carries the Dockerfile location annotations.
#[tokio::test]
async fn vertices_carry_locations() {
    let text = "FROM busybox\nWORKDIR /a\nRUN echo \\\n  hi\n";
    let plan = lower(&parser::parse(text).unwrap(), &FrontendOptions::default(), &FakeResolver::default())
        .await
        .unwrap();
    let run = plan.definition.vertex(&plan.target.digest).unwrap();
    let annotations = &run.metadata.annotations;
    assert_eq!(annotations.get(solver::frontend::ANNOTATION_LINE_START).map(String::as_str), Some("3"));
    assert_eq!(annotations.get(solver::frontend::ANNOTATION_LINE_END).map(String::as_str), Some("4"));
    assert_eq!(annotations.get(solver::frontend::ANNOTATION_LINES).map(String::as_str), Some("3-4"));
    assert_eq!(run.metadata.description.as_deref(), Some("[3/3] RUN echo   hi"));
}

/// The lowering future can be spawned on a multi-threaded runtime.
#[test]
fn lowering_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dockerfile = parser::parse("FROM busybox\nRUN --mount=type=cache,target=/c true\n").unwrap();
    let options = FrontendOptions::default();
    let resolver = FakeResolver::default();
    let future = lower(&dockerfile, &options, &resolver);
    assert_send(&future);
}

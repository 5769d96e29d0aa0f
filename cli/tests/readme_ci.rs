#![allow(clippy::unwrap_used)]
//! README.md's CI job, run as written: the `sh` block after the `ci-job` marker runs twice (two
//! "jobs", each with an empty store, as on fresh CI machines) against a docker-registry with
//! basic auth on 127.0.0.1, on the multi-stage example (the same busybox base loaded into each
//! store); the second job must run no step. The
//! GitHub Actions and GitLab CI examples must hold the same `kiln` commands.

use std::path::Path;
use std::process::Command;

use testkit::Kiln;
use testkit::registry::{Auth, Locations, PASSWORD, RegistryServer, USER};

const MARKER: &str = "<!-- ci-job: tested by cli/tests/readme_ci.rs -->";

fn readme() -> String {
    testkit::read(&testkit::testdata().parent().unwrap().join("README.md"))
}

/// The fenced block (without its fences) starting after `from` in `text`.
fn block_after(text: &str, from: usize) -> String {
    let rest = &text[from..];
    let start = rest.find("```").unwrap();
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

/// The `kiln` commands of a script: continuation lines joined (shell `\` or YAML's folded
/// lines), `sudo -E` dropped, whitespace normalised.
fn kiln_commands(script: &str) -> Vec<String> {
    let mut commands: Vec<String> = Vec::new();
    let mut open = false;
    for line in script.lines() {
        let line = line.trim().trim_start_matches("- ").replace("sudo -E ", "");
        let continued = open;
        open = line.ends_with('\\');
        let line = line.trim_end_matches('\\').trim().to_owned();
        if continued || (line.starts_with("--") || line.starts_with("-t ")) && !commands.is_empty() {
            let last = commands.last_mut().unwrap();
            last.push(' ');
            last.push_str(&line);
        } else if line.split_whitespace().any(|word| word == "kiln") && !line.contains("cargo install") {
            commands.push(line);
        }
    }
    commands.iter().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

#[test]
fn the_readme_ci_job_runs_as_written() {
    testkit::require_root!();
    let readme = readme();
    let at = readme.find(MARKER).expect("README.md has the ci-job marker");
    let job = block_after(&readme, at);
    let job_commands = kiln_commands(&job);
    assert!(job_commands.len() >= 3, "{job_commands:?}");

    // the workflow examples run the same kiln commands
    for name in ["GitHub Actions", "GitLab CI"] {
        let at = readme[at..].find(name).map(|i| i + at).unwrap_or_else(|| panic!("no {name} example"));
        let commands = kiln_commands(&block_after(&readme, at));
        assert_eq!(commands, job_commands, "the {name} example drifted from the tested job");
    }

    let registry = RegistryServer::start_with(Auth::Htpasswd, Locations::Absolute);
    let tmp = tempfile::tempdir().unwrap();
    let kiln_dir = testkit::kiln_binary().parent().unwrap().to_owned();
    let path = format!("{}:{}", kiln_dir.display(), std::env::var("PATH").unwrap_or_default());
    // the same base image in both jobs (as a registry would serve it): imported once, loaded twice
    let seed = Kiln::in_dir(tmp.path(), "seed");
    seed.import_busybox("busybox", &[r#"CMD ["sh"]"#]);
    let base = tmp.path().join("busybox.tar");
    seed.ok(&["save", "-o", base.to_str().unwrap(), "busybox"]);
    for (number, name) in ["first", "second"].iter().enumerate() {
        let kiln = Kiln::in_dir(tmp.path(), &format!("{name}-job"));
        kiln.ok(&["load", "-i", base.to_str().unwrap()]);
        let checkout = tmp.path().join(format!("{name}-checkout"));
        copy_dir(&testkit::testdata().join("example"), &checkout);
        let out = Command::new("sh")
            .args(["-eu", "-c", &job])
            .current_dir(&checkout)
            .env("PATH", &path)
            .env("KILN_ROOT", kiln.path(&format!("{name}-job")))
            .env("DOCKER_CONFIG", tmp.path().join(format!("{name}-docker-config")))
            .env("REGISTRY", registry.host())
            .env("REGISTRY_USER", USER)
            .env("REGISTRY_PASSWORD", PASSWORD)
            .env("TAG", "ci-1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "job {name} failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("hello from kiln, world!"), "job {name}: {stdout}");
        let metadata: serde_json::Value =
            serde_json::from_str(&testkit::read(&checkout.join("build.json"))).unwrap();
        assert!(
            metadata["containerimage.digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{metadata}"
        );
        let ran = testkit::ran(&stderr);
        if number == 0 {
            assert!(!ran.is_empty(), "the first job built nothing: {stderr}");
        } else {
            assert!(
                ran.is_empty(),
                "the second job re-ran {ran:?} instead of using the registry cache: {stderr}"
            );
        }
    }
}

//! Records the git commit kiln is built from (`KILN_COMMIT`, or `git rev-parse`; "unknown"
//! outside a checkout) for `kiln version`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KILN_COMMIT");
    let commit = std::env::var("KILN_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        // rebuild when HEAD moves: HEAD itself and the ref it points at
        for path in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(p) = git(&["rev-parse", "--git-path", &reference])
        {
            println!("cargo:rerun-if-changed={p}");
        }
        let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{hash}-dirty") } else { hash })
    });
    println!("cargo:rustc-env=KILN_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    println!("cargo:rustc-env=KILN_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=KILN_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
}

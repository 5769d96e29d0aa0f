//! Arguments and environments as big as execve takes reach the process (the spec is streamed to
//! the init, whatever its size); what execve refuses fails with the kernel's reason.

mod common;

use common::TestEnv;
use executor::Error;

#[tokio::test]
async fn environment_of_four_60k_variables() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sh", "-c", "echo ${#E1} ${#E2} ${#E3} ${#E4}; echo ${E4:0:1}"]);
    spec.process.env = (1..=4).map(|n| format!("E{n}={}", n.to_string().repeat(60_000))).collect();
    assert_eq!(env.run(spec).await.ok(), "60000 60000 60000 60000\n4\n");
}

#[tokio::test]
async fn a_megabyte_of_arguments_in_strings_the_kernel_takes() {
    testkit::require_root!();
    let env = TestEnv::new();
    // 12 arguments of 100 000 bytes: 1.2 MB in all, each below the 128 KiB per-string limit
    let big: Vec<String> = (0..12).map(|n| ((b'a' + n) as char).to_string().repeat(100_000)).collect();
    let mut args = vec!["/bin/sh", "-c", "echo $# ${#1} ${#12}", "sh"];
    args.extend(big.iter().map(String::as_str));
    assert_eq!(env.run(env.spec(&args)).await.ok(), "12 100000 100000\n");
}

#[tokio::test]
async fn what_execve_refuses_fails_with_e2big() {
    testkit::require_root!();
    let env = TestEnv::new();
    let script = format!("echo {}", "x".repeat(300_000));
    let spec = env.spec(&["/bin/sh", "-c", &script]);
    match env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await {
        Err(Error::Setup { message, exit_code }) => {
            assert!(message.contains("exec /bin/sh: E2BIG: argument list too long"), "{message}");
            assert!(message.contains("the longest 300006 bytes"), "{message}");
            assert_eq!(exit_code, 126);
        }
        other => panic!("expected E2BIG, got {other:?}"),
    }
}

//! Parser throughput on a generated ~1 MB Dockerfile with many stages, heredocs, long
//! continuations, JSON and shell forms, flags and ENV pairs. Run with
//! `cargo bench -p kiln-parser --bench parse`; criterion reports MB/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write as _;

/// Builds a Dockerfile of at least `target` bytes.
fn generate(target: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=busybox\nARG VERSION=1.0\n");
    let mut stage = 0;
    while out.len() < target {
        let _ = writeln!(
            out,
            "\n# stage {stage}\nFROM --platform=$BUILDPLATFORM ${{BASE}}:${{VERSION}} AS stage{stage}"
        );
        let _ = writeln!(out, "WORKDIR /src/{stage}");
        let _ =
            writeln!(out, "ENV A{stage}=1 B{stage}=\"two words\" C{stage}=three\\ words PATH=/opt/bin:$PATH");
        let _ = writeln!(out, "LABEL org.example.stage=\"{stage}\" org.example.version=\"${{VERSION}}\"");
        if stage > 0 {
            let _ = writeln!(out, "COPY --from=stage{} --chown=1000:1000 --chmod=0644 /out/ /in/", stage - 1);
        }
        let _ = writeln!(
            out,
            "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok,required \\"
        );
        for i in 0..12 {
            let _ = writeln!(out, "    apt-get install -y package-{stage}-{i} \\");
            if i % 5 == 4 {
                let _ = writeln!(out, "    # a comment inside the continuation");
            }
        }
        let _ = writeln!(out, "    && rm -rf /var/lib/apt/lists/*");
        let _ = writeln!(
            out,
            "RUN <<EOF bash\nset -euo pipefail\nfor i in $(seq 1 10); do\n  echo \"$i\"\ndone\nEOF"
        );
        let _ =
            writeln!(out, "COPY <<-'CONF' /etc/app-{stage}.conf\n\tkey=value\n\tother=$NOT_EXPANDED\n\tCONF");
        let _ = writeln!(
            out,
            "HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost/ || exit 1"
        );
        let _ = writeln!(out, "EXPOSE 8080/tcp 9090");
        let _ = writeln!(out, "ENTRYPOINT [\"/usr/local/bin/app\", \"--stage\", \"{stage}\"]");
        let _ = writeln!(out, "CMD [\"serve\"]");
        stage += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = generate(1 << 20);
    if let Some(path) = std::env::var_os("KILN_BENCH_WRITE") {
        std::fs::write(&path, &text).expect("write the generated Dockerfile");
    }
    let mut group = c.benchmark_group("parse_1mb");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function("raw", |b| {
        b.iter(|| parser::parse_raw(std::hint::black_box(&text)).map(|r| r.nodes.len()))
    });
    group.bench_function("typed", |b| {
        b.iter(|| parser::parse(std::hint::black_box(&text)).map(|d| d.stages.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

use super::exec::{LineTail, ProcessFailed, TAIL_LINES};
use super::source::{blob_filename, blob_mode, filename_from_url};
use super::*;

#[test]
fn line_tail_keeps_the_last_lines_across_chunks() {
    let mut tail = LineTail::default();
    for i in 0..30 {
        tail.push(format!("line{i}\n").as_bytes());
    }
    tail.push(b"part");
    tail.push(b"ial");
    let lines = tail.finish();
    assert_eq!(lines.len(), TAIL_LINES);
    assert_eq!(lines.first().map(String::as_str), Some("line11"));
    assert_eq!(lines.last().map(String::as_str), Some("partial"));
}

#[test]
fn process_failures_name_the_command_code_and_oom() {
    let failed = |oom_killed| ProcessFailed {
        command: vec!["/bin/sh".into(), "-c".into(), "make".into()],
        exit_code: 137,
        oom_killed,
        output_tail: Vec::new(),
    };
    assert_eq!(
        failed(false).to_string(),
        "process \"/bin/sh -c make\" did not complete successfully: exit code: 137"
    );
    assert_eq!(
        failed(true).to_string(),
        "process \"/bin/sh -c make\" did not complete successfully: exit code: 137 (killed: out of memory)"
    );
}

#[test]
fn download_names_come_from_the_url() {
    assert_eq!(filename_from_url("https://example.com/a/b/tool.tar.gz?x=1#f"), "tool.tar.gz");
    assert_eq!(filename_from_url("https://example.com/"), "index.html");
    assert_eq!(filename_from_url("https://example.com"), "index.html");
    assert_eq!(filename_from_url("http://h/dir/.."), "index.html");
}

#[test]
fn refs_round_trip_through_the_cache_record() {
    let layer = CachedLayer {
        blob: Descriptor::new(oci_spec::image::MediaType::ImageLayerGzip, 3, cache::sha256_digest(b"x")),
        diff_id: cache::sha256_digest(b"y"),
    };
    let chain = BuildRef::from_layers(vec![layer]);
    let record = chain.to_cache().unwrap();
    assert_eq!(BuildRef::from_cache(&record), Some(chain.clone()));
    assert_eq!(chain.layers().map(<[_]>::len), Some(1));

    let mut blob = Descriptor::new(
        oci_spec::image::MediaType::Other("application/octet-stream".into()),
        1,
        cache::sha256_digest(b"z"),
    );
    let mut annotations = HashMap::new();
    annotations.insert(ANNOTATION_FILENAME.to_owned(), "../evil".to_owned());
    annotations.insert(ANNOTATION_MODE.to_owned(), "755".to_owned());
    blob.set_annotations(Some(annotations));
    assert_eq!(blob_filename(&blob), "download", "a name with a slash is never used");
    assert_eq!(blob_mode(&blob), 0o755);
    let blob = BuildRef::Blob(Arc::new(blob));
    assert_eq!(BuildRef::from_cache(&blob.to_cache().unwrap()), Some(blob.clone()));
    assert_eq!(blob.layers(), None);

    let local = BuildRef::Local(Arc::new(LocalDir {
        name: "context".into(),
        path: "/ctx".into(),
        excludes: vec![],
        shared_key: String::new(),
    }));
    assert_eq!(local.to_cache(), None, "a live directory is never cached");
}

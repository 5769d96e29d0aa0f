//! A base image of more layers than one page of `lowerdir=` options holds: the file op's
//! overlay, a read-only view of it and a RUN all mount every layer.

use super::*;

const TALL: &str = "docker.io/library/tall:latest";
/// Layers on top of busybox: their store paths take about three pages of mount options.
const EXTRA_LAYERS: usize = 120;

/// Stores busybox plus [`EXTRA_LAYERS`] layers, layer `i` adding `/layers/<i>` (and the last
/// one replacing `/layers/0`), tagged [`TALL`].
fn tall_image(env: &TestEnv) {
    let store = &env.store;
    let busybox = store.images().get(BASE).unwrap().unwrap();
    let image = store.content().read_image(&busybox.target).unwrap();
    let mut descriptors: Vec<_> = image.layers().unwrap().into_iter().map(|l| l.blob).collect();
    let mut diff_ids: Vec<String> = image.config.rootfs().diff_ids().clone();
    let options = cache::DiffOptions { source_date_epoch: Some(946_684_800), ..Default::default() };
    for i in 0..EXTRA_LAYERS {
        let dir = env.dir.path().join(format!("layer-{i}"));
        write(&dir.join(format!("layers/{i}")), &format!("layer {i}"));
        if i + 1 == EXTRA_LAYERS {
            write(&dir.join("layers/0"), "replaced by the top layer");
        }
        let layer = store.content().write_layer(&dir, cache::DiffSource::PlainDir, &options).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        descriptors.push(layer.descriptor);
        diff_ids.push(layer.diff_id.to_string());
    }
    let mut config = image.config.clone();
    let rootfs = oci_spec::image::RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build().unwrap();
    config.set_rootfs(rootfs);
    config.set_history(None);
    let manifest = store.write_image(&config, &descriptors).unwrap();
    store.images().tag(TALL, &manifest).unwrap();
}

fn tall(builder: &mut GraphBuilder) -> Input {
    let op = Op::Source(SourceOp::Image(ImageSource { reference: TALL.into(), platform: None }));
    builder.add_output(op, vec![], meta("FROM tall")).unwrap()
}

pub(crate) async fn copy_onto_an_image_of_many_layers() {
    let env = TestEnv::new(|_, _| {});
    tall_image(&env);
    write(&env.context().join("app.txt"), "app");

    // COPY onto it: the file op's overlay has every layer as a lower
    let mut b = GraphBuilder::new();
    let from = tall(&mut b);
    let local = context(&mut b);
    let mut copy = CopyAction::new(1, "app.txt", "/layers/");
    copy.follow_symlinks = true;
    let step = file_op(&mut b, vec![from, local], Some(0), vec![FileAction::Copy(copy)]);
    let result = env.solve(b, step).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), EXTRA_LAYERS + 2);
    let entries = env.top_entries(&result);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["layers", "layers/app.txt"], "{entries:?}");
    assert_eq!(entries["layers/app.txt"].3, b"app");

    // COPY --from it: a read-only view of all the layers
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let source = tall(&mut b);
    let mut copy = CopyAction::new(1, "/layers", "/all");
    copy.copy_dir_contents = true;
    copy.create_dest_path = true;
    let step = file_op(&mut b, vec![from, source], Some(0), vec![FileAction::Copy(copy)]);
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    let copied = entries.keys().filter(|k| k.starts_with("all/")).count();
    assert_eq!(copied, EXTRA_LAYERS, "{:?}", entries.keys());
    assert_eq!(entries["all/0"].3, b"replaced by the top layer");
    assert_eq!(
        entries[&format!("all/{}", EXTRA_LAYERS - 1)].3,
        format!("layer {}", EXTRA_LAYERS - 1).as_bytes()
    );

    // and a RUN on the result of the COPY sees the bottom, the middle and the top
    let mut b = GraphBuilder::new();
    let from = tall(&mut b);
    let local = context(&mut b);
    let copy = CopyAction::new(1, "app.txt", "/layers/");
    let copied = file_op(&mut b, vec![from, local], Some(0), vec![FileAction::Copy(copy)]);
    let step = run(
        &mut b,
        copied,
        "ls /layers | wc -l > /count && cat /layers/0 /layers/60 /layers/app.txt > /seen && test -x /bin/sh",
        vec![],
    );
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(String::from_utf8_lossy(&entries["count"].3).trim(), (EXTRA_LAYERS + 1).to_string());
    assert_eq!(entries["seen"].3, b"replaced by the top layerlayer 60app");
    env.assert_no_mounts();
}

//! Snapshots with the real Debian 6.1 kernel: the first start boots and saves the guest at
//! `Hello` (warmed up first: the agent's one-time BPF work is in the snapshot), the next restores
//! it (and the agent answers), a damaged snapshot is removed and the guest boots cold instead.

use crate::common;

use kmatrix::guest::Guest;
use kmatrix_proto::{RunRequest, Status};
use std::time::Duration;

async fn kprobe_passes(g: &mut Guest) {
    let req = RunRequest { scenario: "kprobe.tracefs.openat".into(), ..Default::default() };
    let r = g.run(req, Duration::from_secs(60)).await.unwrap();
    assert_eq!(r.status, Status::Pass, "{}", r.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_snapshot_is_taken_then_restored_and_a_damaged_one_is_replaced() {
    let p = common::prepare("debian-6.1", Vec::new()).await;
    // A command line word of its own gives this test a snapshot key of its own.
    let marker = format!("kmatrix.test=snap-{}", std::process::id());
    let mut opts = p.options("snap", vec![marker.clone()]);
    opts.snapshots = Some(p.session.cache.clone());

    // Other tests of this process start guests too: watch the ones with this test's word.
    let mut watch = common::Watch::marked(std::process::id(), &marker);
    let mut first = p.start(&opts).await;
    watch.look();
    assert!(first.restored, "the first start takes the snapshot, then runs from it");
    let caps = first.caps.clone();
    kprobe_passes(&mut first).await;
    first.shutdown().await.unwrap();

    let mut second = p.start(&opts).await;
    watch.look();
    assert!(second.restored);
    assert_eq!(second.caps, caps);
    assert!(second.hello_after < Duration::from_secs(2), "restore took {:?}", second.hello_after);
    kprobe_passes(&mut second).await;
    let snap_dir = second.boot_path.rsplit(' ').next().unwrap().to_string();
    second.shutdown().await.unwrap();
    // The snapshot was taken warm: the agent answered the warm-up before it.
    let dir = kmatrix::vm::snapshot::root(&p.session.cache).unwrap().join(&snap_dir);
    let meta: kmatrix::vm::snapshot::SnapshotMeta =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    assert!(meta.warm.starts_with("warmed in "), "{meta:?}");

    // Damage the saved device state: the restore fails, the snapshot goes, the guest boots cold.
    std::fs::write(dir.join("state"), b"not a migration stream").unwrap();
    let mut third = p.start(&opts).await;
    watch.look();
    assert!(!third.restored);
    assert!(!dir.exists(), "the damaged snapshot was not removed");
    kprobe_passes(&mut third).await;
    third.shutdown().await.unwrap();
    assert!(watch.qemus().len() >= 3, "three guests were watched: {:?}", watch.seen());
    watch.assert_none_left();
}

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use tugboat_images::{Error, GcThresholds, Removed};

use crate::common::{
    Entry, gzip, layer_tar, new_store, oci_archive, oci_index_archive, test_image,
    this_architecture,
};

#[test]
fn imports_the_busybox_oci_archive() {
    let (_dir, store) = new_store();
    let images = store.import(&test_image("busybox.oci.tar")).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.repo_tags, ["tugboat.test/busybox:latest"]);
    assert_eq!(image.config.cmd, ["sh"]);
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(image.manifest.is_some());

    let layers = store.layer_dirs(image);
    assert_eq!(layers.len(), 1);
    let busybox = fs::metadata(layers[0].join("bin/busybox")).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(layers[0].join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let passwd = fs::read_to_string(layers[0].join("etc/passwd")).unwrap();
    assert!(passwd.contains("nobody:x:65534"), "{passwd}");
    let tmp = fs::metadata(layers[0].join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);

    let by_short_name = store.resolve("tugboat.test/busybox").unwrap().unwrap();
    assert_eq!(by_short_name.id, image.id);
    let by_id = store.resolve(image.id.short()).unwrap().unwrap();
    assert_eq!(by_id.id, image.id);
    assert!(
        store
            .resolve("tugboat.test/busybox:other")
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list().unwrap(), images);
}

#[test]
fn images_share_their_common_layer() {
    let (_dir, store) = new_store();
    let busybox = store
        .import(&test_image("busybox.oci.tar"))
        .unwrap()
        .remove(0);
    let httpd = store
        .import(&test_image("httpd.oci.tar"))
        .unwrap()
        .remove(0);
    assert_eq!(httpd.repo_tags, ["tugboat.test/httpd:latest"]);
    assert_eq!(
        httpd.config.entrypoint,
        [
            "/bin/busybox",
            "httpd",
            "-f",
            "-v",
            "-p",
            "8080",
            "-h",
            "/www"
        ]
    );
    assert_eq!(httpd.config.exposed_ports, ["8080/tcp"]);
    assert_eq!(httpd.config.working_dir.as_deref(), Some("/www"));

    let httpd_layers = store.layer_dirs(&httpd);
    assert_eq!(httpd_layers.len(), 2);
    assert_eq!(httpd_layers[0], store.layer_dirs(&busybox)[0]);
    assert!(
        fs::read_to_string(httpd_layers[1].join("www/index.html"))
            .unwrap()
            .contains("Hello from tugboat.test/httpd")
    );
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn imports_docker_save_archives_plain_and_gzipped() {
    let (dir, store) = new_store();
    let image = store
        .import(&test_image("busybox.docker.tar"))
        .unwrap()
        .remove(0);
    assert_eq!(image.repo_tags, ["tugboat.test/busybox:latest"]);
    assert_eq!(image.manifest, None);
    assert_eq!(image.config.cmd, ["sh"]);
    let layers = store.layer_dirs(&image);
    assert!(layers[0].join("bin/busybox").is_file());

    // The same image from its OCI archive has the same config, so the same ID.
    let (_other_dir, other) = new_store();
    let oci = other
        .import(&test_image("busybox.oci.tar"))
        .unwrap()
        .remove(0);
    assert_eq!(oci.id, image.id);

    let gzipped = dir.path().join("busybox.docker.tar.gz");
    fs::write(
        &gzipped,
        gzip(&fs::read(test_image("busybox.docker.tar")).unwrap()),
    )
    .unwrap();
    let (_gz_dir, gz_store) = new_store();
    assert_eq!(gz_store.import(&gzipped).unwrap()[0].id, image.id);
}

#[test]
fn an_index_archive_gives_this_platforms_image() {
    let (dir, store) = new_store();
    let here = this_architecture();
    let layers =
        |architecture: &str| vec![layer_tar(&[Entry::File("arch", architecture.as_bytes())])];
    let archive = dir.path().join("index.tar");
    oci_index_archive(
        &archive,
        "tugboat.test/multi:v1",
        &[("s390x", layers("s390x")), (here, layers(here))],
    );
    let images = store.import(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, ["tugboat.test/multi:v1"]);
    assert_eq!(images[0].config.architecture, here);
    let layer = store.layer_dirs(&images[0])[0].join("arch");
    assert_eq!(fs::read_to_string(layer).unwrap(), here);
}

#[test]
fn whiteouts_links_and_ownership_are_unpacked_for_overlayfs() {
    let (dir, store) = new_store();
    let lower = layer_tar(&[
        Entry::Dir("etc"),
        Entry::File("etc/keep", b"keep"),
        Entry::File("etc/gone", b"gone"),
        Entry::Dir("opaque"),
        Entry::File("opaque/old", b"old"),
        Entry::Dir("data"),
        Entry::Owned("data/a", b"shared", 0o640, 1000, 1001),
        Entry::HardLink("data/b", "data/a"),
        Entry::Symlink("link", "/data/a"),
    ]);
    let upper = layer_tar(&[
        Entry::File("etc/.wh.gone", b""),
        Entry::Dir("opaque"),
        Entry::File("opaque/.wh..wh..opq", b""),
        Entry::File("opaque/new", b"new"),
    ]);
    let archive = dir.path().join("two-layers.tar");
    oci_archive(
        &archive,
        "tugboat.test/whiteouts:v1",
        &[lower, upper],
        serde_json::json!({}),
    );
    let image = store.import(&archive).unwrap().remove(0);
    assert_eq!(image.repo_tags, ["tugboat.test/whiteouts:v1"]);
    let layers = store.layer_dirs(&image);

    let a = fs::metadata(layers[0].join("data/a")).unwrap();
    let b = fs::metadata(layers[0].join("data/b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "data/b is a hard link to data/a");
    assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1000, 1001, 0o640));
    assert_eq!(
        fs::read_link(layers[0].join("link")).unwrap().to_str(),
        Some("/data/a")
    );

    let whiteout = fs::symlink_metadata(layers[1].join("etc/gone")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!layers[1].join("etc/.wh.gone").exists());
    let opaque = rustix::fs::getxattr(
        layers[1].join("opaque").as_path(),
        "trusted.overlay.opaque",
        &mut [0u8; 8],
    );
    assert_eq!(opaque, Ok(1));
    assert!(!layers[1].join("opaque/.wh..wh..opq").exists());

    let target = dir.path().join("rootfs");
    tugboat_images::rootfs::mount_overlay(
        &layers,
        &dir.path().join("upper"),
        &dir.path().join("work"),
        &target,
    )
    .unwrap();
    let seen = |path: &str| target.join(path).exists();
    let view = (
        seen("etc/keep"),
        seen("etc/gone"),
        seen("opaque/old"),
        seen("opaque/new"),
    );
    tugboat_images::rootfs::unmount(&target).unwrap();
    assert_eq!(view, (true, false, false, true), "keep, gone, old, new");
}

#[test]
fn remove_untags_then_deletes_and_keeps_shared_layers() {
    let (_dir, store) = new_store();
    let busybox = store
        .import(&test_image("busybox.oci.tar"))
        .unwrap()
        .remove(0);
    let httpd = store
        .import(&test_image("httpd.oci.tar"))
        .unwrap()
        .remove(0);
    let httpd_layers = store.layer_dirs(&httpd);

    let removed = store.remove("tugboat.test/httpd").unwrap();
    assert_eq!(
        removed,
        [
            Removed::Untagged("tugboat.test/httpd:latest".to_string()),
            Removed::Deleted(httpd.id.clone())
        ]
    );
    assert!(store.resolve("tugboat.test/httpd").unwrap().is_none());
    assert!(
        httpd_layers[0].is_dir(),
        "busybox still uses the base layer"
    );
    assert!(!httpd_layers[1].exists(), "the www layer went with httpd");
    assert!(
        !store
            .root()
            .join("blobs/sha256")
            .join(httpd.id.hex())
            .exists()
    );

    store.remove(busybox.id.as_str()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );

    match store.remove("tugboat.test/busybox") {
        Err(Error::NotFound(name)) => assert_eq!(name, "tugboat.test/busybox"),
        other => panic!("removing a missing image: {other:?}"),
    }
}

#[test]
fn gc_removes_unused_images_only_past_the_threshold() {
    let (_dir, store) = new_store();
    let busybox = store
        .import(&test_image("busybox.oci.tar"))
        .unwrap()
        .remove(0);
    let httpd = store
        .import(&test_image("httpd.oci.tar"))
        .unwrap()
        .remove(0);
    let in_use = HashSet::from([busybox.id.clone()]);

    let calm = GcThresholds {
        high_percent: 100,
        low_percent: 99,
    };
    assert!(store.gc(&in_use, calm).unwrap().removed.is_empty());
    assert_eq!(store.list().unwrap().len(), 2);

    let full = GcThresholds {
        high_percent: 0,
        low_percent: 0,
    };
    let report = store.gc(&in_use, full).unwrap();
    assert_eq!(report.removed, [httpd.id]);
    let left = store.list().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, busybox.id);
    assert!(store.layer_dirs(&busybox)[0].join("bin/busybox").is_file());
}

#[test]
fn a_file_that_is_no_image_archive_is_refused() {
    let (dir, store) = new_store();
    let path = dir.path().join("not-an-image.tar");
    fs::write(&path, layer_tar(&[Entry::File("hello", b"world")])).unwrap();
    match store.import(&path) {
        Err(error @ Error::Import { .. }) => {
            assert!(
                error.to_string().contains("neither an OCI archive"),
                "{error}"
            )
        }
        other => panic!("importing a plain tar: {other:?}"),
    }
}

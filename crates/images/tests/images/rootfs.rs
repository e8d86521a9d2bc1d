use std::fs;
use std::process::Command;

use tugboat_images::rootfs::{mount_overlay, unmount};

use crate::common::{new_store, test_image};

#[test]
fn an_overlay_of_the_busybox_image_is_a_root_to_run_in() {
    let (dir, store) = new_store();
    let image = store
        .import(&test_image("busybox.oci.tar"))
        .unwrap()
        .remove(0);
    let layers = store.layer_dirs(&image);
    let (upper, target) = (dir.path().join("upper"), dir.path().join("rootfs"));
    mount_overlay(&layers, &upper, &dir.path().join("work"), &target).unwrap();

    let echoed = Command::new("chroot")
        .arg(&target)
        .args(["/bin/busybox", "echo", "hello from the image"])
        .output();
    let written = Command::new("chroot")
        .arg(&target)
        .args([
            "/bin/sh",
            "-c",
            "echo scratch > /tmp/file && rm /etc/group && id -un",
        ])
        .output();
    unmount(&target).unwrap();

    let echoed = echoed.unwrap();
    assert!(echoed.status.success(), "{echoed:?}");
    assert_eq!(
        String::from_utf8_lossy(&echoed.stdout),
        "hello from the image\n"
    );
    let written = written.unwrap();
    assert!(written.status.success(), "{written:?}");
    assert_eq!(String::from_utf8_lossy(&written.stdout), "root\n");

    // Writes went to the upper directory; the shared layer is untouched.
    assert_eq!(
        fs::read_to_string(upper.join("tmp/file")).unwrap(),
        "scratch\n"
    );
    assert!(layers[0].join("etc/group").is_file());
    assert!(!layers[0].join("tmp/file").exists());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "unmounted");
}

//! A disk that fills up under `openorder up`'s databases and embedded broker while orders
//! arrive: a 202 only for an order committed, no id answered twice, every order accepted
//! decided once space returns, without a restart.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{clients_posting, decided, post, tally};
use crate::support;
use crate::support::{temp_dir, UpPorts, UpProcess};

/// A small file system (tmpfs; the tests run as root, as CI does), unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = temp_dir("small-disk");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: the storage-fault tests need root",
            dir.display()
        );
        Self(dir)
    }

    /// Fills the disk: a file written until the disk refuses.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = filler.write(&chunk) {
            if n == 0 {
                break;
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_answered_202_while_the_disk_was_full_all_exist_and_are_decided_once_space_returns_without_a_restart(
) {
    let disk = SmallDisk::mount("96m");
    let data = disk.0.join("data");
    let up = UpProcess::start(&data, &UpPorts::free().expect("free ports")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = up.order_url.clone();
    let mut accepted = Vec::new();
    for _ in 0..20 {
        let (status, body) = post(&http, &base).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(body["orderId"].as_i64().unwrap());
    }

    disk.fill();
    // Four clients post for five seconds against the full disk.
    let mut clients = clients_posting(&http, &base, Duration::from_secs(5));
    let mut refused = Vec::new();
    while let Some(answers) = clients.join_next().await {
        tally(answers.unwrap(), &mut accepted, &mut refused);
    }
    assert!(!refused.is_empty(), "a full disk refused nothing");
    let ids: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(ids.len(), accepted.len(), "an order id was answered twice");

    // The failed commits are counted (a full disk lets some commits through: SQLite
    // rewrites its WAL from the start after a checkpoint without growing it).
    let failed = support::metric(
        &http,
        &base,
        "openorder_storage_commit_failures_total{fault=\"full\"}",
    )
    .await
    .unwrap_or(0);
    assert!(failed > 0, "no failed commit counted on /metrics");

    disk.free();
    // Space is back: the same processes take orders again and decide every one accepted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let next = loop {
        let (status, body) = post(&http, &base).await;
        if status == 202 {
            break body["orderId"].as_i64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused 60 s after space returned: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(!ids.contains(&next), "order id {next} was answered before");
    accepted.push(next);
    for id in &accepted {
        let status = decided(&http, &base, *id, Duration::from_secs(90)).await;
        assert_eq!(status, "CONFIRMED", "order {id}");
    }
    support::wait_ready(&http, &base).await;
    up.stop();
}

//! A small file system for the disk-full scenario: a tmpfs mounted on the scenario's work
//! directory (so the embedded broker's log and every service's SQLite file live on it),
//! filled by one file and freed by removing it. Mounting needs root (CI runs as root);
//! without it the scenario is skipped, saying why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`256m`) on `dir` (created if missing).
    pub fn mount(dir: &Path, size: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .context("Failed to run mount(8)")?;
        anyhow::ensure!(
            status.success(),
            "could not mount a {size} tmpfs on {} (the disk-full scenario needs root)",
            dir.display()
        );
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Fills the file system: one file written until it refuses.
    pub fn fill(&self) -> anyhow::Result<()> {
        let mut filler = std::fs::File::create(self.filler())?;
        let chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = filler.write(&chunk) {
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Gives the space back.
    pub fn free(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.filler()).context("Failed to remove the filler file")
    }
}

impl Drop for SmallDisk {
    /// Keeps the logs (copied to `<dir>-logs`), then unmounts lazily (processes that had
    /// files open there are gone by then).
    fn drop(&mut self) {
        let kept = self.dir.with_file_name(format!(
            "{}-logs",
            self.dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        if std::fs::create_dir_all(&kept).is_ok() {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let _ = std::fs::copy(&path, kept.join(entry.file_name()));
                }
            }
        }
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

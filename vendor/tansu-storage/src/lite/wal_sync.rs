// OpenOrder patch (change 10, vendor/README.md): a produce is answered only once its
// records are on stable storage.
//
// The engine runs SQLite in WAL mode with `synchronous = normal`: a commit is written to the
// `-wal` file but synced only at the next checkpoint, so a power cut or an OS crash could
// lose records the broker had already acknowledged, after their producer had forgotten them.
// `synchronous = full` would sync inside every commit, on the one loop that serves every
// storage request. Instead, a produce whose commits are done asks the thread below to sync
// the WAL file and waits for it; every produce that asks while a sync runs is served by the
// next one (group commit). The syncs per second are bounded by the disk, not by the produce
// rate, and the storage loop never waits for the disk.
//
// Why this is enough: a commit's frames are in the file (in the page cache) before its
// produce asks, and a sync begun after the ask writes every dirty page of the file. SQLite
// recovers a prefix of the committed transactions, so whatever was committed before a
// synced produce (offset commits, other produces) survives with it. A checkpoint, which may
// later reset the WAL, syncs the WAL and then the database file itself.
//
// A failed sync is final: Linux may drop the pages it could not write and report success
// to the next sync (PostgreSQL's "fsyncgate"), so every later produce fails too, until the
// broker restarts and SQLite recovers from what the disk holds.

use std::{
    fs::File,
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    result,
    sync::{Arc, mpsc},
    thread,
};

use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::{Error, Result};

type Outcome = result::Result<(), Arc<io::Error>>;

/// Syncs a database's WAL file for the produces that ask, one sync for all who asked while
/// the previous one ran.
#[derive(Debug)]
pub(crate) struct WalSync {
    requests: mpsc::Sender<oneshot::Sender<Outcome>>,
}

impl WalSync {
    /// Starts the syncing thread for the database at `database` (its WAL is `database-wal`).
    /// The thread ends when the last handle is dropped.
    pub(crate) fn start(database: &Path) -> Result<Self> {
        // The engine's path may end in a separator (`…/broker.db/`), which SQLite ignores.
        let mut wal = database.components().collect::<PathBuf>().into_os_string();
        wal.push("-wal");
        let wal = WalFile {
            path: PathBuf::from(wal),
            open: None,
            missing_reported: false,
        };

        let (requests, asked) = mpsc::channel();
        _ = thread::Builder::new()
            .name("tansu-wal-sync".into())
            .spawn(move || serve(wal, asked))
            .map_err(|err| Error::Io(Arc::new(err)))?;

        Ok(Self { requests })
    }

    /// Waits until everything committed before this call is on stable storage.
    pub(crate) async fn synced(&self) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(answer)
            .map_err(|_| Error::Message("the WAL sync thread has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Message("the WAL sync thread stopped before syncing".into()))?
            .map_err(Error::Io)
    }
}

fn serve(mut wal: WalFile, asked: mpsc::Receiver<oneshot::Sender<Outcome>>) {
    let mut failed: Option<Arc<io::Error>> = None;

    while let Ok(first) = asked.recv() {
        // Everyone who asked by now committed before this sync begins.
        let waiting: Vec<_> = std::iter::once(first).chain(asked.try_iter()).collect();

        let outcome = match &failed {
            Some(err) => Err(Arc::clone(err)),
            None => wal.sync().map_err(Arc::new).inspect_err(|err| {
                error!(
                    path = %wal.path.display(),
                    %err,
                    "syncing the WAL failed; every produce fails from now on, restart the broker"
                );
                failed = Some(Arc::clone(err));
            }),
        };

        for answer in waiting {
            _ = answer.send(outcome.clone());
        }
    }
}

/// The WAL file, kept open between syncs while it is the same file.
struct WalFile {
    path: PathBuf,
    open: Option<File>,
    missing_reported: bool,
}

impl WalFile {
    fn sync(&mut self) -> io::Result<()> {
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            // No WAL: nothing was committed since the last connection closed, and that
            // connection checkpointed (syncing the database) and removed it. The engine's
            // pool keeps connections open, so this should not happen after a commit: say so
            // once, in case the path is not the one SQLite writes.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if !self.missing_reported {
                    self.missing_reported = true;
                    warn!(path = %self.path.display(), "no WAL file to sync after a produce");
                }
                return Ok(());
            }
            Err(err) => return Err(err),
        };

        let file = match self.open.take() {
            Some(file) if is_same_file(&file, &on_disk)? => file,
            _ => {
                let file = File::open(&self.path)?;
                // The WAL is new: its name must survive too.
                if let Some(directory) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    File::open(directory)?.sync_all()?;
                }
                file
            }
        };

        file.sync_data()?;
        self.open = Some(file);
        Ok(())
    }
}

fn is_same_file(file: &File, on_disk: &std::fs::Metadata) -> io::Result<bool> {
    let open = file.metadata()?;
    Ok(open.dev() == on_disk.dev() && open.ino() == on_disk.ino())
}

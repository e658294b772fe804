//! Files that tell a narrative its current name.
//!
//! A waiting narrative given to a user is renamed in traefiker's memory while its process
//! runs on, so the name it was started with goes stale. When `local_command` asks for
//! `{name_file}`, each narrative gets a file holding its current name, rewritten atomically
//! on every rename; the stand-in reads it to name the right narrative on its page.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::LocalError;

/// Tells the directories of several managers in one process apart.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// One manager's directory of name files, removed with the manager.
#[derive(Debug)]
pub(crate) struct NameFiles {
    dir: PathBuf,
}

impl NameFiles {
    /// A directory under the system's temporary directory, created on first write.
    pub fn new() -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        Self {
            dir: std::env::temp_dir().join(format!("traefiker-local-{}-{n}", std::process::id())),
        }
    }

    /// Where the name of the narrative with sequence number `seq` is kept.
    pub fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq}.name"))
    }

    /// Writes `name` to `path` so that a reader sees the old name or the new one, never a
    /// partial one.
    pub fn write(&self, path: &Path, name: &str) -> Result<(), LocalError> {
        let error = |source| LocalError::NameFile {
            path: path.display().to_string(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(error)?;
        }
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, name).map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }

    /// Forgets a narrative's file; one that is gone already is fine.
    pub fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

impl Drop for NameFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

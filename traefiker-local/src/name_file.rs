//! Files that tell a narrative its current name.
//!
//! A waiting narrative given to a user is renamed in traefiker's memory while its process
//! runs on, so the name it was started with goes stale. When `local_command` asks for
//! `{name_file}`, each narrative gets a file holding its current name, rewritten atomically
//! on every rename; the stand-in reads it to name the right narrative on its page.
//!
//! The directory is made by `tempfile`: private to this user (0700) and of a random name,
//! so another local user can neither predict it and plant a symlink there first, nor read
//! or rewrite the names in it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::error::LocalError;

/// One manager's directory of name files, made on first use and removed with the manager.
#[derive(Debug, Default)]
pub(crate) struct NameFiles {
    dir: OnceLock<TempDir>,
}

impl NameFiles {
    /// No directory yet: it is made when the first narrative needs it.
    pub fn new() -> Self {
        Self::default()
    }

    fn dir(&self) -> Result<&Path, LocalError> {
        if self.dir.get().is_none() {
            let made = tempfile::Builder::new()
                .prefix("traefiker-local-")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                .map_err(|source| LocalError::NameFile {
                    path: std::env::temp_dir().display().to_string(),
                    source,
                })?;
            // Two first uses at once: one directory is kept, the other removed on drop.
            let _ = self.dir.set(made);
        }
        match self.dir.get() {
            Some(dir) => Ok(dir.path()),
            None => Err(LocalError::NameFile {
                path: std::env::temp_dir().display().to_string(),
                source: std::io::Error::other("name file directory vanished"),
            }),
        }
    }

    /// Where the name of the narrative with sequence number `seq` is kept.
    pub fn path(&self, seq: u64) -> Result<PathBuf, LocalError> {
        Ok(self.dir()?.join(format!("{seq}.name")))
    }

    /// Writes `name` to `path` so that a reader sees the old name or the new one, never a
    /// partial one.
    pub fn write(&self, path: &Path, name: &str) -> Result<(), LocalError> {
        let error = |source| LocalError::NameFile {
            path: path.display().to_string(),
            source,
        };
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, name).map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }

    /// Forgets a narrative's file; one that is gone already is fine.
    pub fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_directory_is_private_unpredictable_and_removed_with_its_manager() {
        let a = NameFiles::new();
        let b = NameFiles::new();
        let path = a.path(1).unwrap();
        a.write(&path, "narrative-alice-522b27").unwrap();
        let dir = path.parent().unwrap().to_path_buf();
        assert_ne!(dir, b.path(1).unwrap().parent().unwrap());
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(&std::process::id().to_string()),
            "{name} is predictable from the pid"
        );
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "narrative-alice-522b27"
        );
        drop(a);
        assert!(!dir.exists());
    }
}

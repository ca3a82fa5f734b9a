//! Crash-safe files: whole-file replacement by write-temp, fsync, rename, fsync-directory, and
//! fsynced line appends. A reader either sees the old file or the new one, never a torn one,
//! so a file that does not parse is real corruption and is reported as such, naming the file;
//! the agent never guesses or silently drops what a file recorded.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A state file the agent cannot read or write.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "{}: corrupt: {reason} (the agent does not guess what it held: repair the file, or \
         remove it knowing that what it recorded is forgotten)",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

impl StateError {
    pub fn io(path: &Path, action: &'static str, source: io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub fn corrupt(path: &Path, reason: impl Into<String>) -> StateError {
        StateError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

pub fn create_dir(path: &Path) -> Result<(), StateError> {
    fs::create_dir_all(path).map_err(|e| StateError::io(path, "create directory", e))
}

/// Reads a JSON file; `None` if it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, "read", e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::corrupt(path, e.to_string()))
}

/// Replaces `path` with `value` as JSON, atomically and durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StateError::io(path, "encode", io::Error::other(e)))?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// Write to a temporary file beside `path`, fsync it, rename it over `path`, then fsync the
/// directory so the rename itself survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let directory = parent_of(path);
    let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
    temporary_name.push(".tmp");
    let temporary = directory.join(temporary_name);
    let write = || -> io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| StateError::io(&temporary, "write", e))?;
    fs::rename(&temporary, path).map_err(|e| StateError::io(path, "replace", e))?;
    sync_directory(directory)
}

/// Appends one line and fsyncs it: when this returns, the line survives a crash.
pub fn append_line(path: &Path, line: &str) -> Result<(), StateError> {
    debug_assert!(!line.contains('\n'), "one record per line");
    let append = || -> io::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        file.sync_data()
    };
    append().map_err(|e| StateError::io(path, "append to", e))
}

/// Removes a file; one already gone is fine (removal is idempotent).
pub fn remove_file(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io(path, "remove", e)),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_directory(directory: &Path) -> Result<(), StateError> {
    File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(directory, "sync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_a_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("value.json");
        assert_eq!(read_json::<Vec<u32>>(&path).expect("read"), None);
        write_json(&path, &vec![1u32, 2, 3]).expect("write");
        assert_eq!(
            read_json::<Vec<u32>>(&path).expect("read"),
            Some(vec![1, 2, 3])
        );
        assert!(
            !dir.path().join("value.json.tmp").exists(),
            "temporary renamed away"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_corrupt_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("value.json");
        fs::write(&path, b"{ not json").expect("write");
        let error = read_json::<Vec<u32>>(&path).expect_err("corrupt");
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("value.json"), "{error}");
    }

    #[test]
    fn appended_lines_accumulate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        append_line(&path, "a").expect("append");
        append_line(&path, "b").expect("append");
        assert_eq!(fs::read_to_string(&path).expect("read"), "a\nb\n");
        remove_file(&path).expect("remove");
        remove_file(&path).expect("removing twice is fine");
    }
}

//! Key files: an ed25519 secret as 64 hex digits (optionally `0x`), one per
//! file. Shared by the node's sequencer key and the challenger's key.
//!
//! A key file is created atomically: a crash while creating it leaves
//! either no file or the whole one, never an empty or torn file that would
//! stop every later start. It is written to a temporary file (mode 0600
//! from creation), synced, renamed into place, and the directory synced.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

/// Reads the key at `path`: `Ok(None)` when there is no file, `Err` with a
/// message for anything else (unreadable, not 64 hex digits).
pub fn read_key(path: &Path) -> Result<Option<SigningKey>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let mut seed = [0u8; 32];
    hex::decode_to_slice(t, &mut seed).map_err(|e| format!("expected 64 hex characters: {e}"))?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// Creates a key file with fresh randomness (and its directory); fails if
/// the file exists.
pub fn create_key(path: &Path) -> std::io::Result<SigningKey> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_secret(path, &hex::encode(key.to_bytes()))?;
    Ok(key)
}

/// Writes `text` (plus a newline) to `path` atomically, readable by the
/// owner only; fails if `path` exists.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    if path.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"));
    }
    // A temporary name of this writer's own, created new: a leftover or a
    // concurrent writer's file is never reused (its permissions and its
    // bytes would be; found by a review).
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}.{:016x}", std::process::id(), rand::random::<u64>()));
    let tmp = PathBuf::from(tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    // A hard link, unlike a rename, never replaces a file that appeared
    // meanwhile (another process creating the same key).
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_read_back_and_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/k.key");
        assert!(read_key(&p).expect("no file is not an error").is_none());
        let k = create_key(&p).expect("created");
        assert_eq!(read_key(&p).expect("reads").expect("exists").to_bytes(), k.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        // Never replaced, and no temporary file left behind.
        assert!(create_key(&p).is_err());
        assert_eq!(read_key(&p).expect("reads").expect("exists").to_bytes(), k.to_bytes());
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).expect("dir").count(), 1);
    }

    #[test]
    fn a_leftover_temporary_file_does_not_block_creation() {
        // What a crash before the link leaves: a temporary file only.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.key");
        std::fs::write(dir.path().join("k.key.tmp"), "").expect("write");
        create_key(&p).expect("created over the leftover");
        assert!(read_key(&p).expect("reads").is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        }
    }

    /// Two creators at once: exactly one wins, and the file holds the key
    /// the winner returned (a shared temporary name let the loser rewrite
    /// the winner's file; found by a review).
    #[test]
    fn concurrent_creators_never_tear_the_key() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("k.key");
            let (a, b) = std::thread::scope(|s| {
                let a = s.spawn(|| create_key(&p));
                let b = s.spawn(|| create_key(&p));
                (a.join().expect("thread"), b.join().expect("thread"))
            });
            let on_disk = read_key(&p).expect("reads").expect("exists").to_bytes();
            match (a, b) {
                (Ok(k), Err(_)) | (Err(_), Ok(k)) => assert_eq!(k.to_bytes(), on_disk),
                (a, b) => panic!("exactly one creator wins: {:?} {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    #[test]
    fn malformed_files_are_errors_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.key");
        for bad in ["", "not hex", "0x1234"] {
            std::fs::write(&p, bad).expect("write");
            let e = read_key(&p).expect_err("refused");
            assert!(e.contains("64 hex characters"), "{e}");
        }
        std::fs::write(&p, format!("0x{}\n", "ab".repeat(32))).expect("write");
        assert!(read_key(&p).expect("reads").is_some());
    }
}

//! One writer per run directory: an exclusive lock held for the whole run.
//!
//! `xbn train` (new runs and `--resume`) takes an exclusive OS file lock (`flock`, through
//! [`std::fs::File::try_lock`]) on `<run>/xbn.lock` before it writes anything, and holds it
//! until it returns. A second writer on the same directory fails at once with
//! [`TrainError::RunLocked`] naming the holder (its process id and start time, written into
//! the lock file). The operating system releases the lock when the holder exits, however it
//! exits (a kill included), so a stale lock file left by a killed run is taken over by the
//! next writer without any clean-up. The lock file is never deleted: deleting it would let
//! two writers lock two different files.
//!
//! Readers (`xbn eval`, `xbn esm`, `xbn predict`) take no lock and never write a file the
//! training writes: xbn's own files (`config.json`, `model.safetensors`, `final.json`) are
//! replaced atomically (temporary file and rename), so a reader sees a whole old or a whole
//! new file; a burn-train checkpoint read while it is being written fails to load with a
//! typed error rather than being misread. [`holder`] tells readers whether a run is being
//! trained.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::TrainError;

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = "xbn.lock";

/// An exclusive lock on a run directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the exclusive lock of `run_dir` (which must exist), without waiting, and writes
    /// this process's id and the time into the lock file.
    ///
    /// # Errors
    /// [`TrainError::RunLocked`] when another process (or another run in this process)
    /// holds it; [`TrainError::Io`] when the lock file cannot be created.
    pub fn acquire(run_dir: &Path) -> Result<Self, TrainError> {
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        // A reader asking `holder` takes a shared lock for an instant: try a few times
        // before concluding that another writer holds it.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(TrainError::RunLocked {
                        dir: run_dir.to_path_buf(),
                        holder: read_holder(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stamp = format!("pid {}, started {}\n", std::process::id(), utc(now));
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(stamp.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `2026-12-02 10:41:09 UTC` for seconds since the Unix epoch (proleptic Gregorian).
fn utc(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.take(256).read_to_string(&mut text);
    match text.trim() {
        "" => "another process".to_string(),
        t => t.to_string(),
    }
}

/// Who is training the run in `run_dir` right now (the lock holder's description), or
/// `None` when nobody holds its lock. Does not take or disturb the lock.
pub fn holder(run_dir: &Path) -> Option<String> {
    let path = run_dir.join(LOCK_FILE);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_holder(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc(1_796_208_069), "2026-12-02 10:41:09 UTC");
    }
}

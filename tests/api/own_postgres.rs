//! A PostgreSQL instance of a test's own (Debian's `initdb` and `pg_ctl`, a temporary
//! directory, a free port), for tests that stop the database under the server.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::tool_ready;

/// A private PostgreSQL; stopped and removed when dropped.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Runs a PostgreSQL tool as the `postgres` user when this process is root (PostgreSQL
/// refuses to run as root).
fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> std::process::Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let tool = bin.join(tool);
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&tool);
        c
    } else {
        Command::new(&tool)
    };
    command.args(args).output().expect("run a PostgreSQL tool")
}

impl OwnPostgres {
    /// Starts one; `None` (SKIPPED outside CI) when Debian's PostgreSQL tools are missing.
    pub fn start(test: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok())
                    .map(|v| v.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            });
        if !tool_ready(bin.is_some(), "initdb", test) {
            return None;
        }
        let bin = bin?;
        let dir = tempfile::tempdir().expect("temp dir");
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status();
        let data = dir.path().join("data").display().to_string();
        let out = as_postgres(
            &bin,
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::processes::free_port();
        let pg = Self { dir, bin, port };
        pg.resume();
        Some(pg)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it (fast shutdown: connections are cut).
    pub fn stop(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it again.
    pub fn resume(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "stop"],
        );
    }
}

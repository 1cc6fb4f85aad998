//! A private PostgreSQL server for tests: Debian's `initdb` and `pg_ctl` (from the
//! `postgresql` package), run as the `postgres` user in a temporary directory, on a free
//! port, listening on 127.0.0.1 only; stopped and removed on drop. Tests use
//! `$DATABASE_URL` instead when it is set.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running private cluster.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// The base URL for tests: `$DATABASE_URL`, or a private cluster started here (kept alive by
/// the returned guard).
pub fn database_url() -> Result<(String, Option<PgCluster>), String> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return Ok((url, None));
    }
    let c = PgCluster::start()?;
    Ok((c.url("postgres"), Some(c)))
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (install Debian's postgresql package: make test does)"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".into())
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .map_err(|e| format!("runuser {tool}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

impl PgCluster {
    /// Make and start a cluster (as root: `initdb` and `pg_ctl` refuse to run as root, so they
    /// run as `postgres` through `runuser`).
    pub fn start() -> Result<PgCluster, String> {
        let bin = bin_dir()?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let dir = std::env::temp_dir().join(format!("ardoise-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let chown =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err(format!("chown postgres {} failed (tests run as root to start PostgreSQL)", dir.display()));
        }
        let data = dir.join("data");
        let d = data.to_str().ok_or("non-UTF-8 temp dir")?.to_owned();
        as_postgres(&bin, "initdb", &["-D", &d, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])?;
        let cluster = PgCluster { dir: dir.clone(), port, bin: bin.clone() };
        cluster.resume()?;
        Ok(cluster)
    }

    /// Stop the server (fast shutdown: connections are cut), keeping its data: a database
    /// outage.
    pub fn pause(&self) -> Result<(), String> {
        let d = self.dir.join("data");
        as_postgres(&self.bin, "pg_ctl", &["-D", d.to_str().unwrap_or(""), "-m", "fast", "-w", "stop"]).map(|_| ())
    }

    /// Start the server (again) on its port.
    pub fn resume(&self) -> Result<(), String> {
        let d = self.dir.join("data");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("log");
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                d.to_str().unwrap_or(""),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap_or("log"),
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
        .map(|_| ())
        .map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// The URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let d = self.dir.join("data");
        let _ = as_postgres(&self.bin, "pg_ctl", &["-D", d.to_str().unwrap_or(""), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh, empty database next to `base_url`'s (`CREATE DATABASE`); returns its URL.
pub async fn fresh_database(base_url: &str) -> Result<String, String> {
    use sqlx::Connection;
    let name = format!(
        "ardoise_t_{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
            & 0xffff_ffff_ffff
    );
    let mut conn =
        sqlx::PgConnection::connect(base_url).await.map_err(|e| format!("connect {}: {e}", crate::redact(base_url)))?;
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .map_err(|e| format!("CREATE DATABASE (the test needs that right on $DATABASE_URL): {e}"))?;
    let (head, _) = base_url.rsplit_once('/').ok_or("a database URL ends with /NAME")?;
    Ok(format!("{head}/{}", name))
}

//! The local services the tooling starts (the emulator, the Go-built collectors, Jaeger): a
//! free port, waiting for a listener, stopping as Lambda stops an extension, and a service
//! started with `--config=<file>` whose output goes to a log shown when it fails to start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (bound then released: another process could take it first,
/// which the start then reports).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `addr`, or `child` exits. Returns how
/// long it took.
pub(crate) async fn wait_listening(
    child: &mut tokio::process::Child,
    addr: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before listening on {addr} ({status})");
        }
        if started.elapsed() > timeout {
            bail!("{what} did not listen on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends a child process the way Lambda ends an extension: SIGTERM, then a wait (a collector
/// drains its queues and exporters then), SIGKILL after `grace`.
pub(crate) async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// A service started as `<binary> --config=<dir>/<name>.yaml`, its stdout and stderr in
/// `<dir>/<name>.log`; the temporary directory lives as long as this value.
pub(crate) struct ConfiguredProcess {
    pub child: tokio::process::Child,
    pub log_path: PathBuf,
    /// What it is, in messages (`the collector`, `Jaeger`).
    what: &'static str,
    _dir: tempfile::TempDir,
}

impl ConfiguredProcess {
    /// Writes `config` and starts `binary` on it with `env` added to its environment.
    pub fn spawn(
        binary: &Path,
        name: &str,
        what: &'static str,
        config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config_path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&config_path, config)?;
        let log_path = dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config={}", config_path.display()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            log_path,
            what,
            _dir: dir,
        })
    }

    /// [`wait_listening`] on `addr` (30 s at most); when it fails, the process is killed and
    /// the error carries its log.
    pub async fn wait_listening(&mut self, addr: &str) -> anyhow::Result<Duration> {
        match wait_listening(&mut self.child, addr, self.what, Duration::from_secs(30)).await {
            Ok(took) => Ok(took),
            Err(e) => {
                let _ = self.child.kill().await;
                let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                Err(e.context(format!("{} log:\n{log}", self.what)))
            }
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

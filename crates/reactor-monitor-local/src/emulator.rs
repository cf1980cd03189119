//! The local AWS emulator (moto's server mode), started on 127.0.0.1 on a free port.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::process::free_port;

/// Overrides where the emulator's executable is found.
pub const MOTO_SERVER_ENV: &str = "REACTOR_MONITOR_MOTO_SERVER";
const MOTO_SERVER: &str = "moto_server";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running emulator; stopped when dropped.
pub struct Emulator {
    child: Child,
    endpoint: String,
}

impl Emulator {
    /// Finds the executable: `$REACTOR_MONITOR_MOTO_SERVER`, then the project's `.venv`
    /// (as set up by `scripts/setup-local`), then `PATH`.
    pub fn locate() -> anyhow::Result<PathBuf> {
        if let Ok(path) = std::env::var(MOTO_SERVER_ENV) {
            return Ok(PathBuf::from(path));
        }
        let candidates = [
            PathBuf::from(".venv/bin").join(MOTO_SERVER),
            crate::project_root().join(".venv/bin").join(MOTO_SERVER),
        ];
        if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
            return Ok(found);
        }
        if let Some(found) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(MOTO_SERVER))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
        bail!(
            "the local AWS emulator ({MOTO_SERVER}) was not found: run scripts/setup-local, \
             or set {MOTO_SERVER_ENV}, or pass --endpoint to use one already running"
        )
    }

    pub async fn start() -> anyhow::Result<Self> {
        let program = Self::locate()?;
        let port = free_port()?;
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group: Ctrl-C in a terminal reaches us, and we stop it after
            // the batch in flight, instead of the terminal killing it mid-batch.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let emulator = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        emulator.wait_ready().await?;
        Ok(emulator)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let address = self.endpoint.trim_start_matches("http://").to_string();
        let started = tokio::time::Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the emulator did not listen on {address} within {START_TIMEOUT:?}")
    }

    /// Stops the emulator and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

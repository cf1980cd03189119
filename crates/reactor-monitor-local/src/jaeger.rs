//! A real trace backend on this machine (`reactor-monitor local --jaeger`): the Jaeger v2 binary
//! built and cached by `scripts/build-jaeger`, run with a configuration of our own in which
//! every listener is on 127.0.0.1 (OTLP/HTTP on a free port, the query API and UI on 16686 or
//! a free port, its gRPC query API on a free port), in-memory storage, no internal metrics.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::process::{ConfiguredProcess, free_port, terminate};

/// Jaeger's configuration: an OTLP/HTTP receiver, memory storage, the query service; every
/// address given, all on 127.0.0.1.
pub fn config(otlp_http: u16, query_http: u16, query_grpc: u16) -> String {
    format!(
        r#"# Jaeger v2 for reactor-monitor's local runs: every listener on 127.0.0.1.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn

extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}

exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
"#
    )
}

/// The cached Jaeger binary, built first if needed (`scripts/build-jaeger`: ~12 min the first
/// time on 2 cores).
pub fn binary() -> anyhow::Result<PathBuf> {
    let root = crate::project_root();
    let output = std::process::Command::new(root.join("scripts/build-jaeger"))
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/build-jaeger")?;
    if !output.status.success() {
        bail!("scripts/build-jaeger failed");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A running Jaeger.
pub struct LocalJaeger {
    /// Its OTLP/HTTP endpoint, `http://127.0.0.1:<port>`.
    pub otlp_endpoint: String,
    /// Its query API and UI, `http://127.0.0.1:<port>`.
    pub query_url: String,
    process: ConfiguredProcess,
}

impl LocalJaeger {
    /// Starts the cached Jaeger; the UI on `query_port` (16686 for the CLI) or a free port.
    pub async fn start(query_port: Option<u16>) -> anyhow::Result<Self> {
        Self::start_binary(&binary()?, query_port).await
    }

    pub async fn start_binary(binary: &Path, query_port: Option<u16>) -> anyhow::Result<Self> {
        let otlp = free_port()?;
        let query = match query_port {
            Some(port) => port,
            None => free_port()?,
        };
        let grpc = free_port()?;
        let mut process = ConfiguredProcess::spawn(
            binary,
            "jaeger",
            "Jaeger",
            &config(otlp, query, grpc),
            // Jaeger's own tracing would export to localhost:4317.
            &[
                ("OTEL_SDK_DISABLED", "true"),
                ("OTEL_TRACES_EXPORTER", "none"),
            ],
        )?;
        for addr in [format!("127.0.0.1:{otlp}"), format!("127.0.0.1:{query}")] {
            process.wait_listening(&addr).await?;
        }
        Ok(Self {
            otlp_endpoint: format!("http://127.0.0.1:{otlp}"),
            query_url: format!("http://127.0.0.1:{query}"),
            process,
        })
    }

    /// GET on the query API (`path_and_query` starts with `/api/`); the JSON answer.
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let uri: hyper::Uri = format!("{}{path_and_query}", self.query_url).parse()?;
        let host = uri.host().context("no host")?.to_string();
        let port = uri.port_u16().context("no port")?;
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = hyper::Request::get(path_and_query)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "Jaeger answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(serde_json::from_slice(&body)?)
    }

    /// The traces of `service` whose spans carry every `tags` pair (Jaeger's `/api/traces`).
    pub async fn traces(
        &self,
        service: &str,
        tags: &serde_json::Value,
        limit: usize,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let tags = percent_encode(&tags.to_string());
        let answer = self
            .get(&format!(
                "/api/traces?service={service}&tags={tags}&limit={limit}&lookback=1h"
            ))
            .await?;
        Ok(answer["data"].as_array().cloned().unwrap_or_default())
    }

    pub async fn stop(mut self) {
        terminate(&mut self.process.child, Duration::from_secs(5)).await;
    }

    /// Keeps Jaeger running until Ctrl-C (the CLI, after a run).
    pub async fn serve_until_ctrl_c(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c().await?;
        self.stop().await;
        Ok(())
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

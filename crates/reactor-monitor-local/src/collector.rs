//! A real OpenTelemetry Collector between the function and the local OTLP receiver
//! (`reactor-monitor local --collector otel-collector/<file>.yaml`): the collector built by
//! `scripts/build-collectors` from the Collector Builder manifest of the file's Lambda layer
//! (its first line, `# layer: adot|community`), run with that configuration as the layer would
//! run it, only pointed at this machine:
//!
//! - its OTLP receiver listens on a free 127.0.0.1 port (HTTP only: the function speaks
//!   OTLP/HTTP), and the function exports there;
//! - every `otlphttp` exporter sends to the local receiver instead of X-Ray (or Jaeger),
//!   uncompressed (the receiver reads plain protobuf), with its `auth` removed: the `sigv4auth` extension is dropped, since nothing here checks a
//!   signature (and it would look for AWS credentials);
//! - processors the rebuilt collector lacks (`decouple`, the community layer's own, not on the
//!   Go module proxy) are removed; the others (`batch`) run as written;
//! - the collector's own metrics are turned off (they would bind 8888 on every run).
//!
//! An `awsxray` exporter cannot run here: that exporter is not buildable from the Go module
//! proxy (otel-collector/builder/README.md), so a configuration using it is refused;
//! `scripts/check-template` checks it with the validate step only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{ConfiguredProcess, free_port, terminate};
use serde_norway::{Mapping, Value};

/// The Lambda layer family a configuration is written for (its `# layer:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The ADOT collector layer (no processors).
    Adot,
    /// The OpenTelemetry community collector layer (processors, `decouple`).
    Community,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Adot => "adot",
            Layer::Community => "community",
        }
    }

    /// The layer a configuration names on its first line, `# layer: adot|community`.
    pub fn of_config(text: &str) -> anyhow::Result<Self> {
        match text.lines().next().map(str::trim) {
            Some("# layer: adot") => Ok(Layer::Adot),
            Some("# layer: community") => Ok(Layer::Community),
            other => bail!("the first line must be `# layer: adot|community`, not {other:?}"),
        }
    }
}

/// A collector configuration rewritten for this machine, and what was changed.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub layer: Layer,
    pub yaml: String,
    /// One line per change that is not only an address (shown to the user).
    pub notes: Vec<String>,
}

/// Rewrites a layer configuration: OTLP/HTTP receiver on `listen` (host:port), every exporter
/// to OTLP/HTTP at `receiver` (`http://127.0.0.1:port`), no auth, no `decouple`, no metrics.
pub fn local_config(text: &str, listen: &str, receiver: &str) -> anyhow::Result<LocalConfig> {
    let layer = Layer::of_config(text)?;
    let mut config: Value = serde_norway::from_str(text).context("parsing the configuration")?;
    let root = config
        .as_mapping_mut()
        .context("the configuration is not a mapping")?;
    let mut notes = Vec::new();
    listen_on(root, listen)?;
    export_to(root, receiver, layer, &mut notes)?;
    drop_sigv4auth(root, &mut notes);
    // The collector's own metrics: off (a Prometheus endpoint on 8888 per collector otherwise).
    let telemetry: Value = serde_norway::from_str("metrics: {level: none}")?;
    section(root, "service").insert("telemetry".into(), telemetry);
    drop_unbuildable_processors(root, &mut notes);
    Ok(LocalConfig {
        layer,
        yaml: serde_norway::to_string(&config)?,
        notes,
    })
}

/// The OTLP receiver: OTLP/HTTP only, on the given loopback address.
fn listen_on(root: &mut Mapping, listen: &str) -> anyhow::Result<()> {
    let receivers = section(root, "receivers");
    if !receivers.contains_key("otlp") {
        bail!("the configuration has no `otlp` receiver");
    }
    let protocols: Value = serde_norway::from_str(&format!("http: {{endpoint: \"{listen}\"}}"))?;
    let mut otlp = Mapping::new();
    otlp.insert("protocols".into(), protocols);
    receivers.insert("otlp".into(), Value::Mapping(otlp));

    Ok(())
}

/// Each otlphttp exporter to the local receiver, unsigned and uncompressed; an exporter that
/// cannot point there is an error naming it.
fn export_to(
    root: &mut Mapping,
    receiver: &str,
    layer: Layer,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let exporters = section(root, "exporters");
    let names: Vec<String> = exporters
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for name in names {
        let kind = name.split('/').next().unwrap_or_default();
        match kind {
            "otlphttp" | "otlp_http" => {
                let settings = exporters
                    .entry(name.clone().into())
                    .or_insert(Value::Mapping(Mapping::new()));
                if settings.is_null() {
                    *settings = Value::Mapping(Mapping::new());
                }
                let settings = settings.as_mapping_mut().context("exporter settings")?;
                let was = settings
                    .get("traces_endpoint")
                    .or_else(|| settings.get("endpoint"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                settings.remove("endpoint");
                settings.insert(
                    "traces_endpoint".into(),
                    format!("{receiver}/v1/traces").into(),
                );
                notes.push(format!(
                    "exporter {name}: {was} -> the local receiver {receiver}, uncompressed"
                ));
                // The local receiver reads uncompressed protobuf; the exporter gzips by default.
                settings.insert("compression".into(), "none".into());
                if layer == Layer::Community {
                    // The community layer's confmap converter turns exporter queues off: the
                    // export runs inside the pipeline (behind batch and decouple).
                    let queue: Value = serde_norway::from_str("enabled: false")?;
                    settings.insert("sending_queue".into(), queue);
                }
                if settings.remove("auth").is_some() {
                    notes.push(format!(
                        "exporter {name}: auth removed (nothing signs or checks SigV4 locally)"
                    ));
                }
            }
            "debug" => {}
            "awsxray" => bail!(
                "exporter {name}: the awsxray exporter is not buildable here (not served by the \
                 Go module proxy, see otel-collector/builder/README.md); this configuration is \
                 checked by scripts/check-template's validate step only"
            ),
            other => bail!("exporter {name}: {other} cannot be pointed at the local receiver"),
        }
    }

    Ok(())
}

/// The sigv4auth extension signs for AWS only: dropped, with its mention in the service.
fn drop_sigv4auth(root: &mut Mapping, notes: &mut Vec<String>) {
    if let Some(Value::Mapping(extensions)) = root.get_mut("extensions") {
        extensions.retain(|k, _| k.as_str().is_none_or(|k| !k.starts_with("sigv4auth")));
        if extensions.is_empty() {
            root.remove("extensions");
        }
    }
    let service = section(root, "service");
    if let Some(Value::Sequence(listed)) = service.get_mut("extensions") {
        let before = listed.len();
        listed.retain(|v| v.as_str().is_none_or(|v| !v.starts_with("sigv4auth")));
        if listed.len() != before {
            notes.push("extension sigv4auth dropped (local exporters are unsigned)".into());
        }
        if listed.is_empty() {
            service.remove("extensions");
        }
    }
}

/// Processors the rebuilt collectors lack (the community layer's `decouple`), dropped from
/// the configuration and from every pipeline.
fn drop_unbuildable_processors(root: &mut Mapping, notes: &mut Vec<String>) {
    let mut removed = Vec::new();
    if let Some(Value::Mapping(processors)) = root.get_mut("processors") {
        processors.retain(|k, _| {
            let keep = k.as_str().is_none_or(|k| !k.starts_with("decouple"));
            if !keep {
                removed.push(k.as_str().unwrap_or_default().to_string());
            }
            keep
        });
        if processors.is_empty() {
            root.remove("processors");
        }
    }
    if !removed.is_empty() {
        notes.push(format!(
            "processor {} dropped: the community layer's own, not on the Go module proxy \
             (otel-collector/builder/README.md); the export then happens before the flush \
             returns only if no other processor queues it",
            removed.join(", ")
        ));
        if let Some(Value::Mapping(pipelines)) = section(root, "service").get_mut("pipelines") {
            for (_, pipeline) in pipelines.iter_mut() {
                if let Some(Value::Sequence(listed)) = pipeline
                    .as_mapping_mut()
                    .and_then(|p| p.get_mut("processors"))
                {
                    listed.retain(|v| v.as_str().is_none_or(|v| !removed.iter().any(|r| r == v)));
                }
            }
        }
    }
}

fn section<'a>(root: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let value = root
        .entry(key.into())
        .or_insert(Value::Mapping(Mapping::new()));
    if !value.is_mapping() {
        *value = Value::Mapping(Mapping::new());
    }
    value.as_mapping_mut().expect("a mapping")
}

/// The cached collector binary of a layer, built first if needed (`scripts/build-collectors`).
pub fn binary(layer: Layer) -> anyhow::Result<PathBuf> {
    let root = crate::project_root();
    let output = std::process::Command::new(root.join("scripts/build-collectors"))
        .arg(layer.name())
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/build-collectors")?;
    if !output.status.success() {
        bail!("scripts/build-collectors {} failed", layer.name());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}\t", layer.name())))
        .context("scripts/build-collectors printed no binary")?;
    Ok(PathBuf::from(path.trim()))
}

/// A running collector.
pub struct LocalCollector {
    /// Where the function exports: `http://127.0.0.1:<port>` (OTLP/HTTP).
    pub endpoint: String,
    pub layer: Layer,
    pub notes: Vec<String>,
    /// Process start to its OTLP port accepting connections.
    pub start_time: Duration,
    pub pid: u32,
    process: ConfiguredProcess,
}

impl LocalCollector {
    /// Starts the collector of `config_file`'s layer with that file rewritten for this machine,
    /// exporting to `receiver`. Its output goes to a log file beside the rewritten config
    /// (`collector.log`), shown when it fails to start.
    pub async fn start(config_file: &Path, receiver: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(config_file)
            .with_context(|| format!("reading {}", config_file.display()))?;
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let local = local_config(&text, &listen, receiver)
            .with_context(|| format!("{}", config_file.display()))?;
        let binary = binary(local.layer)?;
        Self::start_binary(&binary, local, &listen).await
    }

    pub async fn start_binary(
        binary: &Path,
        local: LocalConfig,
        listen: &str,
    ) -> anyhow::Result<Self> {
        let mut process = ConfiguredProcess::spawn(
            binary,
            "collector",
            "the collector",
            &local.yaml,
            // The layer's environment, with nothing that could reach AWS.
            &[
                ("AWS_REGION", reactor_monitor::aws::LOCAL_REGION),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("JAEGER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ],
        )?;
        let pid = process.child.id().unwrap_or_default();
        let start_time = process.wait_listening(listen).await?;
        Ok(Self {
            endpoint: format!("http://{listen}"),
            layer: local.layer,
            notes: local.notes,
            start_time,
            pid,
            process,
        })
    }

    /// The collector's resident set size now, in KiB (Linux /proc).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// Stops the collector as Lambda stops the extension (SIGTERM): it exports what it still
    /// holds (a `batch` processor's pending spans) before it exits. Returns the lines of its
    /// log at level error.
    pub async fn stop(mut self) -> Vec<String> {
        terminate(&mut self.process.child, Duration::from_secs(10)).await;
        self.process
            .log()
            .lines()
            .filter(|l| l.contains("\terror\t"))
            .map(str::to_string)
            .collect()
    }
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

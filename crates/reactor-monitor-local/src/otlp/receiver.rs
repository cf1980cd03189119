//! The OTLP/HTTP receiver: decodes the spans it is sent, keeps them (a bounded window when
//! asked) and forwards them unchanged when `OTEL_EXPORTER_OTLP_ENDPOINT` names an endpoint.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use prost::Message;
use serde::Serialize;

use opentelemetry_semantic_conventions::attribute as semconv;
use reactor_monitor::telemetry::names::spans;

/// A span as received over OTLP.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub error: bool,
    pub attributes: BTreeMap<String, String>,
    pub links: Vec<(String, String)>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }

    /// A record's consumer span (`process <stream>`).
    pub fn is_record(&self) -> bool {
        self.attr(semconv::MESSAGING_OPERATION_NAME) == Some(spans::PROCESS)
    }

    /// An alert's PRODUCER span (`publish <alert topic>`), whose context the alert carries.
    pub fn is_publish(&self) -> bool {
        self.attr(semconv::MESSAGING_OPERATION_NAME) == Some(spans::PUBLISH) && !self.is_page()
    }

    /// An on-call page's PRODUCER span (`publish <on-call topic>`, with the `episode_action`
    /// it published), whose context the page carries.
    pub fn is_page(&self) -> bool {
        self.attr(semconv::MESSAGING_OPERATION_NAME) == Some(spans::PUBLISH)
            && self.attr(spans::EPISODE_ACTION).is_some()
    }

    /// The W3C `traceparent` of this span, as an alert published under it carries it.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

impl ReceivedSpan {
    /// A span as the OTLP protobuf carries it, ids in hex and attribute values as text.
    fn from_otlp(span: opentelemetry_proto::tonic::trace::v1::Span) -> Self {
        Self {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            name: span.name,
            kind: span.kind,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            error: span
                .status
                .is_some_and(|s| s.code == OtlpStatus::Error as i32),
            attributes: span
                .attributes
                .into_iter()
                .map(|kv| {
                    (
                        kv.key,
                        kv.value.and_then(|v| v.value).map(text).unwrap_or_default(),
                    )
                })
                .collect(),
            links: span
                .links
                .into_iter()
                .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                .collect(),
        }
    }
}

/// Received spans, oldest first.
#[derive(Default)]
struct SpanStore {
    spans: std::collections::VecDeque<ReceivedSpan>,
    total: usize,
    capacity: Option<usize>,
}

impl SpanStore {
    fn extend(&mut self, received: Vec<ReceivedSpan>) {
        self.total += received.len();
        self.spans.extend(received);
        if let Some(capacity) = self.capacity {
            let excess = self.spans.len().saturating_sub(capacity);
            self.spans.drain(..excess);
        }
    }
}

/// A running receiver; its spans are shared with whoever holds the handle.
///
/// It serves on a thread and runtime of its own, as a collector serves from a process of its
/// own: a caller that blocks its runtime while its spans are exported (a flush on a
/// current-thread runtime waits for this receiver's answer) cannot starve it.
pub struct OtlpReceiver {
    pub endpoint: String,
    spans: Arc<Mutex<SpanStore>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Starts a receiver; when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (an `http://` OTLP/HTTP
    /// endpoint such as Jaeger's on localhost:4318), every request is also forwarded there
    /// unchanged.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_forwarding(std::env::var(FORWARD_ENV).ok().filter(|v| !v.is_empty())).await
    }

    pub async fn start_forwarding(forward_to: Option<String>) -> anyhow::Result<Self> {
        Self::start_with(forward_to, None).await
    }

    /// A receiver that keeps only the `capacity` most recent spans, for runs without an end.
    pub async fn start_bounded(capacity: usize) -> anyhow::Result<Self> {
        Self::start_with(
            std::env::var(FORWARD_ENV).ok().filter(|v| !v.is_empty()),
            Some(capacity),
        )
        .await
    }

    async fn start_with(
        forward_to: Option<String>,
        capacity: Option<usize>,
    ) -> anyhow::Result<Self> {
        let forward: Option<Arc<str>> = forward_to.map(|e| Arc::from(e.trim_end_matches('/')));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the OTLP receiver")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(Mutex::new(SpanStore {
            capacity,
            ..SpanStore::default()
        }));
        let shared = spans.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the OTLP receiver's runtime")?;
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve(listener, shared, forward) => {}
                    }
                });
            })
            .context("starting the OTLP receiver's thread")?;
        Ok(Self {
            endpoint,
            spans,
            stop: Some(stop),
        })
    }

    /// The spans kept: all of them, or the most recent ones of a bounded receiver.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .expect("spans lock")
            .spans
            .iter()
            .cloned()
            .collect()
    }

    /// Spans received since the start, including those a bounded receiver let go.
    pub fn total_received(&self) -> usize {
        self.spans.lock().expect("spans lock").total
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Accepts connections and answers each OTLP/HTTP request.
async fn serve(
    listener: tokio::net::TcpListener,
    spans: Arc<Mutex<SpanStore>>,
    forward: Option<Arc<str>>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let spans = spans.clone();
        let forward = forward.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| receive(req, spans.clone(), forward.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The standard variable naming where spans should go; the receiver forwards there.
pub const FORWARD_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

async fn receive(
    req: Request<Incoming>,
    spans: Arc<Mutex<SpanStore>>,
    forward: Option<Arc<str>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(response)
    };
    if req.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let body = body.to_bytes();
    if let Some(target) = forward {
        let copy = body.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_request(&target, copy).await {
                tracing::warn!(target = %target, error = %e, "spans could not be forwarded");
            }
        });
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let received: Vec<ReceivedSpan> = request
        .resource_spans
        .into_iter()
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .map(ReceivedSpan::from_otlp)
        .collect();
    spans.lock().expect("spans lock").extend(received);
    reply(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// POSTs an OTLP/HTTP protobuf body to `<endpoint>/v1/traces` (plain HTTP/1.1).
async fn forward_request(endpoint: &str, body: Bytes) -> anyhow::Result<()> {
    let uri: hyper::Uri = format!("{endpoint}/v1/traces").parse()?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "only http:// endpoints can be forwarded to"
    );
    let host = uri.host().context("no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::post(uri.path())
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the endpoint answered {}",
        response.status()
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: AnyValue) -> String {
    match value {
        AnyValue::StringValue(s) => s,
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        AnyValue::ArrayValue(a) => a
            .values
            .into_iter()
            .filter_map(|v| v.value.map(text))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    }
}

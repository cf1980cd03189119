//! A fault-injecting HTTP proxy between the handler's AWS SDK clients and the local emulator.
//!
//! The emulator never throttles and never fails; AWS does both. The proxy listens on
//! 127.0.0.1 and, at configurable rates per service, answers in the service's place with the
//! errors AWS returns under load (throttling, 500, 503), drops the connection without an
//! answer, or holds every request for an added latency. Everything else is forwarded as is.
//!
//! An injected fault never reaches the emulator: like a throttled request on AWS, it has no
//! effect, so the SDK's own retries and the event source mapping's are safe to make.
//! (The SDK retries throttles, 5xx and dropped connections itself, up to 3 attempts with
//! backoff; only what is still failing after that reaches the pipeline.)

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Environment variable the CLI reads a fault spec from, like `--faults`.
pub const FAULTS_ENV: &str = "REACTOR_MONITOR_FAULTS";

/// An AWS service, as the proxy tells it from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    DynamoDb,
    Kinesis,
    Sns,
    S3,
    Sqs,
    Other,
}

impl Service {
    /// The services a spec can name, by their SigV4 signing names.
    pub const NAMED: [Service; 5] = [
        Self::DynamoDb,
        Self::Kinesis,
        Self::Sns,
        Self::S3,
        Self::Sqs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DynamoDb => "dynamodb",
            Self::Kinesis => "kinesis",
            Self::Sns => "sns",
            Self::S3 => "s3",
            Self::Sqs => "sqs",
            Self::Other => "other",
        }
    }

    fn from_signing_name(name: &str) -> Self {
        Self::NAMED
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
            .unwrap_or(Self::Other)
    }

    /// Which service a request is for. The SigV4 credential scope
    /// (`Credential=<key>/<date>/<region>/<service>/aws4_request`) names it; an unsigned
    /// request is told by its protocol: the JSON target prefix, a Query `Action=` form, else S3.
    pub fn of(headers: &HeaderMap, body: &[u8]) -> Self {
        let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(scope) = text(header::AUTHORIZATION)
            .and_then(|auth| auth.split_once("Credential="))
            .and_then(|(_, rest)| rest.split([',', ' ']).next())
            && let Some(service) = scope.rsplit('/').nth(1)
        {
            return Self::from_signing_name(service);
        }
        if let Some(target) = text(HeaderName::from_static("x-amz-target")) {
            return match target.split_once('.').map(|(prefix, _)| prefix) {
                Some("DynamoDB_20120810") => Self::DynamoDb,
                Some("Kinesis_20131202") => Self::Kinesis,
                Some("AmazonSQS") => Self::Sqs,
                _ => Self::Other,
            };
        }
        let form = text(header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form && (body.starts_with(b"Action=") || body.windows(8).any(|w| w == b"&Action=")) {
            return Self::Sns;
        }
        Self::S3
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the proxy does to a request that draws a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The service's own throttling error: DynamoDB and Kinesis
    /// `ProvisionedThroughputExceededException` (400), SNS `Throttling` (400),
    /// S3 `SlowDown` (503).
    Throttle,
    /// 500 with the service's internal error code.
    InternalError,
    /// 503 with the service's unavailable error code.
    Unavailable,
    /// The request is read, then the connection is closed with no answer.
    Drop,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        Self::Throttle,
        Self::InternalError,
        Self::Unavailable,
        Self::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::InternalError => "500",
            Self::Unavailable => "503",
            Self::Drop => "drop",
        }
    }
}

/// A malformed fault spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fault spec item {item:?}: {problem} (e.g. rate=0.05,latency-ms=20,seed=1 or dynamodb=0.05,sns=0.05,s3=0.02)"
)]
pub struct FaultSpecError {
    item: String,
    problem: String,
}

/// What to inject, parsed from `rate=0.05,latency-ms=20,seed=1` or
/// `dynamodb=0.05,sns=0.05,s3=0.02,kinds=throttle+drop`.
///
/// Clones share one set of counters: what every proxy started from this spec injected.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    /// Probability that a request gets a fault, for services without a rate of their own.
    pub rate: f64,
    pub per_service: BTreeMap<Service, f64>,
    /// Faults drawn from, each equally likely.
    pub kinds: Vec<FaultKind>,
    /// Added to every request before it is answered or forwarded.
    pub latency: Duration,
    pub seed: u64,
    counters: Arc<Mutex<BTreeMap<Service, ServiceFaults>>>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            rate: 0.0,
            per_service: BTreeMap::new(),
            kinds: FaultKind::ALL.to_vec(),
            latency: Duration::ZERO,
            seed: 1,
            counters: Arc::default(),
        }
    }
}

impl FaultSpec {
    pub fn rate_for(&self, service: Service) -> f64 {
        self.per_service.get(&service).copied().unwrap_or(self.rate)
    }

    /// What the proxies started from this spec (or a clone) have done so far.
    pub fn injected(&self) -> InjectedFaults {
        InjectedFaults {
            by_service: self.counters.lock().expect("fault counters").clone(),
        }
    }

    fn count(&self, service: Service, update: impl FnOnce(&mut ServiceFaults)) {
        update(
            self.counters
                .lock()
                .expect("fault counters")
                .entry(service)
                .or_default(),
        );
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        if items.is_empty() {
            return Err(FaultSpecError {
                item: text.into(),
                problem: "the spec is empty".into(),
            });
        }
        for item in items {
            let error = |problem: &str| FaultSpecError {
                item: item.into(),
                problem: problem.into(),
            };
            let (key, value) = item
                .split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
                .ok_or_else(|| error("expected key=value"))?;
            let probability = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| error("a rate is a probability between 0 and 1"))
            };
            match key.as_str() {
                "rate" => spec.rate = probability()?,
                "latency-ms" => {
                    let ms = value
                        .parse()
                        .map_err(|_| error("latency-ms is a whole number of milliseconds"))?;
                    spec.latency = Duration::from_millis(ms);
                }
                "seed" => spec.seed = value.parse().map_err(|_| error("seed is a whole number"))?,
                "kinds" => {
                    let mut kinds = Vec::new();
                    for name in value.split('+').map(str::trim) {
                        let kind = FaultKind::ALL
                            .into_iter()
                            .find(|k| k.as_str().eq_ignore_ascii_case(name))
                            .ok_or_else(|| {
                                error("kinds are throttle, 500, 503 and drop, joined by +")
                            })?;
                        if !kinds.contains(&kind) {
                            kinds.push(kind);
                        }
                    }
                    spec.kinds = kinds;
                }
                name => {
                    let service = Service::NAMED
                        .into_iter()
                        .find(|s| s.as_str() == name)
                        .ok_or_else(|| {
                            error("keys are rate, latency-ms, seed, kinds, dynamodb, kinesis, sns, s3, sqs")
                        })?;
                    spec.per_service.insert(service, probability()?);
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate={}", self.rate)?;
        for (service, rate) in &self.per_service {
            write!(f, ",{service}={rate}")?;
        }
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        write!(
            f,
            ",kinds={},latency-ms={},seed={}",
            kinds.join("+"),
            self.latency.as_millis(),
            self.seed
        )
    }
}

/// What the proxy did to one service's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServiceFaults {
    pub requests: u64,
    pub forwarded: u64,
    pub throttled: u64,
    pub internal_errors: u64,
    pub unavailable: u64,
    pub dropped: u64,
    /// Requests the emulator itself could not answer (answered 502): not injected.
    pub upstream_errors: u64,
}

impl ServiceFaults {
    /// Faults the proxy injected on purpose.
    pub fn injected(&self) -> u64 {
        self.throttled + self.internal_errors + self.unavailable + self.dropped
    }

    fn add(&mut self, other: &ServiceFaults) {
        self.requests += other.requests;
        self.forwarded += other.forwarded;
        self.throttled += other.throttled;
        self.internal_errors += other.internal_errors;
        self.unavailable += other.unavailable;
        self.dropped += other.dropped;
        self.upstream_errors += other.upstream_errors;
    }
}

/// Counts of what the proxy did, per service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InjectedFaults {
    pub by_service: BTreeMap<Service, ServiceFaults>,
}

impl InjectedFaults {
    pub fn total(&self) -> ServiceFaults {
        let mut total = ServiceFaults::default();
        for counts in self.by_service.values() {
            total.add(counts);
        }
        total
    }
}

impl fmt::Display for InjectedFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        write!(
            f,
            "{} faults injected in {} requests",
            total.injected(),
            total.requests
        )?;
        for (service, c) in &self.by_service {
            write!(
                f,
                "; {service}: {} requests, {} throttled, {} × 500, {} × 503, {} dropped",
                c.requests, c.throttled, c.internal_errors, c.unavailable, c.dropped
            )?;
            if c.upstream_errors > 0 {
                write!(f, ", {} upstream errors", c.upstream_errors)?;
            }
        }
        Ok(())
    }
}

/// A running proxy on 127.0.0.1; stopped when dropped.
pub struct FaultProxy {
    endpoint: String,
    spec: FaultSpec,
    accept: JoinHandle<()>,
}

struct State {
    upstream: SocketAddr,
    spec: FaultSpec,
    rng: Mutex<StdRng>,
    next_request: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream`, an `http://` endpoint on this machine.
    pub async fn start(upstream: &str, spec: &FaultSpec) -> anyhow::Result<Self> {
        let upstream = loopback_address(upstream).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the fault proxy on 127.0.0.1")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            upstream,
            spec: spec.clone(),
            rng: Mutex::new(StdRng::seed_from_u64(spec.seed)),
            next_request: AtomicU64::new(1),
        });
        Ok(Self {
            endpoint,
            spec: spec.clone(),
            accept: tokio::spawn(accept(listener, state)),
        })
    }

    /// The endpoint to give the SDK clients instead of the emulator's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn injected(&self) -> InjectedFaults {
        self.spec.injected()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The proxy only ever fronts an emulator on this machine, over plain HTTP.
async fn loopback_address(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let Some(authority) = endpoint.strip_prefix("http://") else {
        bail!("the fault proxy fronts an http:// endpoint, not {endpoint:?}");
    };
    let authority = authority.trim_end_matches('/');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .collect();
    match addresses.iter().find(|a| a.ip().is_loopback()) {
        Some(address) if addresses.iter().all(|a| a.ip().is_loopback()) => Ok(*address),
        _ => bail!("the fault proxy only fronts an emulator on 127.0.0.1, not {endpoint:?}"),
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set, so that stopping the proxy stops them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(state.clone(), request)
                    });
                    // A dropped request ends its connection with an error: that is the point.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Returned by the service to close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
struct Dropped;

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    // Read the whole request first, as a service does before it answers.
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let service = Service::of(&parts.headers, &body);
    let spec = &state.spec;
    spec.count(service, |c| c.requests += 1);
    let fault = state.draw(service);
    if !spec.latency.is_zero() {
        tokio::time::sleep(spec.latency).await;
    }
    let request_id = format!(
        "fault-proxy-{:08}",
        state.next_request.fetch_add(1, Ordering::Relaxed)
    );
    match fault {
        Some(FaultKind::Drop) => {
            spec.count(service, |c| c.dropped += 1);
            return Err(Dropped);
        }
        Some(kind) => {
            spec.count(service, |c| match kind {
                FaultKind::Throttle => c.throttled += 1,
                FaultKind::InternalError => c.internal_errors += 1,
                _ => c.unavailable += 1,
            });
            return Ok(error_response(service, kind, &request_id));
        }
        None => {}
    }

    let mut forward = Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            forward = forward.header(name, value);
        }
    }
    let forwarded = match forward.body(Full::new(body)) {
        Ok(request) => send_upstream(state.upstream, request).await,
        Err(e) => Err(anyhow::Error::new(e)),
    };
    match forwarded {
        Ok(response) => {
            spec.count(service, |c| c.forwarded += 1);
            Ok(response)
        }
        Err(e) => {
            spec.count(service, |c| c.upstream_errors += 1);
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "the emulator did not answer the fault proxy: {e:#}"
            ))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(response)
        }
    }
}

impl State {
    fn draw(&self, service: Service) -> Option<FaultKind> {
        let rate = self.spec.rate_for(service);
        if rate <= 0.0 || self.spec.kinds.is_empty() {
            return None;
        }
        let mut rng = self.rng.lock().expect("fault proxy rng");
        (rng.random::<f64>() < rate)
            .then(|| self.spec.kinds[rng.random_range(0..self.spec.kinds.len())])
    }
}

/// One connection per forwarded request: nothing pooled can go stale between requests.
async fn send_upstream(
    upstream: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    drop(sender);
    let _ = connection.await;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), and
/// `expect`: the proxy has read the whole body already.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The error each service returns, in its own protocol.
fn error_response(service: Service, kind: FaultKind, request_id: &str) -> Response<Full<Bytes>> {
    let status = match (service, kind) {
        (Service::S3, FaultKind::Throttle) | (_, FaultKind::Unavailable) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        (_, FaultKind::InternalError) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let (content_type, body, id_header) = match service {
        Service::DynamoDb => {
            let (code, message) = match kind {
                FaultKind::Throttle => (
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
                ),
                FaultKind::InternalError => ("InternalServerError", "Internal server error"),
                _ => ("ServiceUnavailable", "Service unavailable"),
            };
            let body = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}"#
            );
            ("application/x-amz-json-1.0", body, "x-amzn-requestid")
        }
        Service::Kinesis | Service::Sqs | Service::Other => {
            let (code, message) = match (service, kind) {
                (Service::Kinesis, FaultKind::Throttle) => (
                    "ProvisionedThroughputExceededException",
                    "Rate exceeded for shard.",
                ),
                (_, FaultKind::Throttle) => ("ThrottlingException", "Rate exceeded"),
                (_, FaultKind::InternalError) => ("InternalFailure", "Internal service error"),
                _ => ("ServiceUnavailable", "Service unavailable"),
            };
            let content_type = if service == Service::Kinesis {
                "application/x-amz-json-1.1"
            } else {
                "application/x-amz-json-1.0"
            };
            let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
            (content_type, body, "x-amzn-requestid")
        }
        Service::Sns => {
            let (kind_of, code, message) = match kind {
                FaultKind::Throttle => ("Sender", "Throttling", "Rate exceeded"),
                FaultKind::InternalError => ("Receiver", "InternalError", "Internal error"),
                _ => ("Receiver", "ServiceUnavailable", "Service unavailable"),
            };
            let body = format!(
                r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{kind_of}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#
            );
            ("text/xml", body, "x-amzn-requestid")
        }
        Service::S3 => {
            let (code, message) = match kind {
                FaultKind::Throttle => ("SlowDown", "Please reduce your request rate."),
                FaultKind::InternalError => (
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
                _ => ("ServiceUnavailable", "Service is unable to handle request."),
            };
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"#
            );
            ("application/xml", body, "x-amz-request-id")
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static(id_header), id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_spec_names_a_rate_for_all_services_or_one_each() {
        let spec: FaultSpec = "rate=0.05,latency-ms=20,seed=9".parse().unwrap();
        assert_eq!(spec.rate_for(Service::DynamoDb), 0.05);
        assert_eq!(spec.latency, Duration::from_millis(20));
        assert_eq!(spec.seed, 9);
        assert_eq!(spec.kinds, FaultKind::ALL);

        let spec: FaultSpec = "dynamodb=0.05, sns=0.1 ,s3=0.02,kinds=throttle+drop"
            .parse()
            .unwrap();
        assert_eq!(spec.rate_for(Service::DynamoDb), 0.05);
        assert_eq!(spec.rate_for(Service::Sns), 0.1);
        assert_eq!(spec.rate_for(Service::Kinesis), 0.0);
        assert_eq!(spec.kinds, [FaultKind::Throttle, FaultKind::Drop]);
        let again: FaultSpec = spec.to_string().parse().unwrap();
        assert_eq!(again.to_string(), spec.to_string());
    }

    #[test]
    fn a_malformed_spec_says_which_item_is_wrong() {
        for bad in [
            "",
            "rate=1.5",
            "rate=-0.1",
            "rate",
            "lambda=0.1",
            "kinds=throttle+429",
            "latency-ms=fast",
            "seed=-1",
        ] {
            let err = bad.parse::<FaultSpec>().unwrap_err();
            assert!(
                err.to_string().contains("invalid fault spec"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_service_is_read_from_the_credential_scope_or_the_protocol() {
        let signed = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00",
        )]);
        assert_eq!(Service::of(&signed, b""), Service::DynamoDb);
        let target = headers(&[("x-amz-target", "Kinesis_20131202.GetRecords")]);
        assert_eq!(Service::of(&target, b"{}"), Service::Kinesis);
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            Service::of(&form, b"Action=PublishBatch&Version=2010-03-31"),
            Service::Sns
        );
        assert_eq!(Service::of(&HeaderMap::new(), b"bytes"), Service::S3);
    }

    #[tokio::test]
    async fn the_proxy_refuses_to_front_anything_but_this_machine() {
        let spec = FaultSpec::default();
        assert!(
            FaultProxy::start("https://127.0.0.1:1", &spec)
                .await
                .is_err()
        );
        assert!(
            FaultProxy::start("http://192.0.2.1:80", &spec)
                .await
                .is_err()
        );
    }

    /// SDK clients through a proxy that faults every request, with the SDK's retries off.
    async fn sdk_through(spec: &str) -> (FaultProxy, aws_config::SdkConfig, FaultSpec) {
        let spec: FaultSpec = spec.parse().unwrap();
        // Nothing listens on port 9 of 127.0.0.1; a faulted request never gets there anyway.
        let proxy = FaultProxy::start("http://127.0.0.1:9", &spec)
            .await
            .unwrap();
        let sdk = reactor_monitor::aws::local_sdk_config(proxy.endpoint())
            .await
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        (proxy, sdk, spec)
    }

    #[tokio::test]
    async fn throttles_carry_each_services_own_error_code() {
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;
        let (_proxy, sdk, spec) = sdk_through("rate=1,kinds=throttle").await;

        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap_err();
        let kinesis = aws_sdk_kinesis::Client::new(&sdk)
            .list_streams()
            .send()
            .await
            .unwrap_err();
        let sns = aws_sdk_sns::Client::new(&sdk)
            .list_topics()
            .send()
            .await
            .unwrap_err();
        let s3 = reactor_monitor::aws::s3_client(&sdk)
            .list_buckets()
            .send()
            .await
            .unwrap_err();

        assert_eq!(
            dynamodb.code(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(
            kinesis.code(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(sns.code(), Some("Throttling"));
        assert_eq!(s3.code(), Some("SlowDown"));
        let injected = spec.injected();
        assert_eq!(injected.total().throttled, 4, "{injected}");
        for service in [
            Service::DynamoDb,
            Service::Kinesis,
            Service::Sns,
            Service::S3,
        ] {
            assert_eq!(injected.by_service[&service].requests, 1, "{service}");
        }
    }

    #[tokio::test]
    async fn server_errors_and_dropped_connections_reach_the_sdk_as_such() {
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;
        let (_p, sdk, _) = sdk_through("rate=1,kinds=500").await;
        let err = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InternalServerError"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));

        let (_p, sdk, _) = sdk_through("rate=1,kinds=503").await;
        let err = aws_sdk_sns::Client::new(&sdk)
            .list_topics()
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));

        let (_p, sdk, spec) = sdk_through("rate=1,kinds=drop").await;
        let err = reactor_monitor::aws::s3_client(&sdk)
            .list_buckets()
            .send()
            .await
            .unwrap_err();
        assert!(
            // A response cut off is retryable: the SDK tries the request again.
            matches!(err, aws_sdk_s3::error::SdkError::DispatchFailure(ref e)
                if e.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError)),
            "{err:?}"
        );
        assert_eq!(spec.injected().by_service[&Service::S3].dropped, 1);
    }
}

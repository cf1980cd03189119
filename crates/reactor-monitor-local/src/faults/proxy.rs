//! The proxy itself: listens on 127.0.0.1, tells the service of each request, draws a fault
//! or forwards the request to the emulator.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::catalogue::error_response;
use super::spec::{FaultKind, FaultSpec, InjectedFaults, Service};

impl Service {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

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

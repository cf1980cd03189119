//! The fault spec language (`rate=0.05,latency-ms=20,seed=1`), the services and fault kinds
//! it names, and the counts of what was injected.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

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

    pub(super) fn count(&self, service: Service, update: impl FnOnce(&mut ServiceFaults)) {
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
                    spec.kinds = parse_kinds(value).ok_or_else(|| {
                        error("kinds are throttle, 500, 503 and drop, joined by +")
                    })?
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

/// `throttle+drop`: the fault kinds named, each once, in order; `None` when a name is unknown.
fn parse_kinds(value: &str) -> Option<Vec<FaultKind>> {
    let mut kinds = Vec::new();
    for name in value.split('+').map(str::trim) {
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Some(kinds)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

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

mod catalogue;
mod proxy;
mod spec;

pub use proxy::FaultProxy;
pub use spec::{FaultKind, FaultSpec, FaultSpecError, InjectedFaults, Service, ServiceFaults};

/// Environment variable the CLI reads a fault spec from, like `--faults`.
pub const FAULTS_ENV: &str = "REACTOR_MONITOR_FAULTS";

//! Implementations of the ports: AWS services, and memory for tests and benchmarks.

pub mod dynamodb;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod s3;
pub mod sns;

mod retry;

use crate::ports::{FailureKind, TransientError};

/// Error codes AWS services use to ask callers to slow down.
const THROTTLING_CODES: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Turns an SDK error into a transient failure, keeping its cause.
pub(crate) fn sdk_failure<E>(
    operation: &'static str,
    err: aws_sdk_dynamodb::error::SdkError<E>,
) -> TransientError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    let code = err.code().unwrap_or_default().to_string();
    let kind = if THROTTLING_CODES.contains(&code.as_str()) {
        FailureKind::Throttled
    } else {
        FailureKind::Service
    };
    let message = match (code.as_str(), err.message()) {
        ("", _) => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        (code, Some(msg)) => format!("{code}: {msg}"),
        (code, None) => code.to_string(),
    };
    TransientError::new(operation, kind, message).with_source(err)
}

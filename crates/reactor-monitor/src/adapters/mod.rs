//! Implementations of the ports: AWS services, and memory for tests and benchmarks.

pub mod dynamodb;
pub mod episode_state;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod on_call;
pub mod s3;
pub mod sns;

mod retry;

use crate::operation::AwsOperation;
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

/// Error codes by which a service refuses one request's content: the item (or, for a batch
/// call, one of its items) can never be accepted as it is.
/// Sources: DynamoDB <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>,
/// SNS <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html#API_PublishBatch_Errors>,
/// S3 <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList>.
const REJECTED_CODES: [&str; 10] = [
    "ValidationException",
    "InvalidParameter",
    "ParameterValueInvalid",
    "InvalidParameterValue",
    "BatchRequestTooLong",
    "InvalidArgument",
    "KeyTooLongError",
    "MetadataTooLarge",
    "EntityTooLarge",
    "InvalidRequest",
];

/// Error codes that mean the function cannot use its resources at all: missing resources,
/// denied access, unusable KMS keys, invalid credentials (same sources, and SNS's
/// `Publish` errors <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors>).
const MISCONFIGURED_CODES: [&str; 23] = [
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "ResourceNotFoundException",
    "NotFound",
    "NotFoundException",
    "NoSuchBucket",
    "AllAccessDisabled",
    "KMSDisabled",
    "KMSDisabledException",
    "KMSAccessDenied",
    "KMSAccessDeniedException",
    "KMSNotFound",
    "KMSNotFoundException",
    "KMSInvalidState",
    "KMSInvalidStateException",
    "KMSOptInRequired",
    "InvalidSecurity",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
];

/// DynamoDB answers a table whose key schema is not the one the function writes with a
/// `ValidationException` naming the key: a configuration error, not one bad item.
const KEY_SCHEMA_MESSAGES: [&str; 2] = ["does not match the schema", "Missing the key"];

/// The kind of failure an AWS error code means (and, for DynamoDB's `ValidationException`,
/// its message): what must happen next, by [`FailureKind::class`]. Unknown codes, server
/// errors, timeouts and network errors are transient.
pub fn failure_kind(code: &str, message: Option<&str>) -> FailureKind {
    let message = message.unwrap_or_default();
    if THROTTLING_CODES.contains(&code) {
        FailureKind::Throttled
    } else if MISCONFIGURED_CODES.contains(&code)
        || (code == "ValidationException"
            && KEY_SCHEMA_MESSAGES.iter().any(|m| message.contains(m)))
    {
        FailureKind::Misconfigured
    } else if REJECTED_CODES.contains(&code) {
        FailureKind::Rejected
    } else {
        FailureKind::Service
    }
}

/// Turns an SDK error into a failure of the kind its code means, keeping its cause.
pub(crate) fn sdk_failure<E>(
    operation: AwsOperation,
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
    let kind = failure_kind(&code, err.message());
    let message = match (code.as_str(), err.message()) {
        ("", _) => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        (code, Some(msg)) => format!("{code}: {msg}"),
        (code, None) => code.to_string(),
    };
    TransientError::new(operation, kind, message).with_source(err)
}

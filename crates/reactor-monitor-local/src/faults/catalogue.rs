//! The errors AWS services return under load, each in its own protocol, as the proxy answers
//! in their place.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::spec::{FaultKind, Service};

/// The error each service returns, in its own protocol.
pub(super) fn error_response(
    service: Service,
    kind: FaultKind,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let status = match (service, kind) {
        (Service::S3, FaultKind::Throttle) | (_, FaultKind::Unavailable) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        (_, FaultKind::InternalError) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let (content_type, body, id_header) = match service {
        Service::DynamoDb => dynamodb_error(kind),
        Service::Kinesis | Service::Sqs | Service::Other => json_error(service, kind),
        Service::Sns => sns_error(kind, request_id),
        Service::S3 => s3_error(kind, request_id),
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

/// An error's content type, body and the header that carries its request id.
type ErrorBody = (&'static str, String, &'static str);

/// DynamoDB's errors: JSON 1.0 with the service's namespaced `__type`.
fn dynamodb_error(kind: FaultKind) -> ErrorBody {
    let (code, message) = match kind {
        FaultKind::Throttle => (
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        ),
        FaultKind::InternalError => ("InternalServerError", "Internal server error"),
        _ => ("ServiceUnavailable", "Service unavailable"),
    };
    let body =
        format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}"#);
    ("application/x-amz-json-1.0", body, "x-amzn-requestid")
}

/// Kinesis, SQS and other JSON-protocol services' errors.
fn json_error(service: Service, kind: FaultKind) -> ErrorBody {
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

/// SNS's errors: the Query protocol's XML `ErrorResponse`.
fn sns_error(kind: FaultKind, request_id: &str) -> ErrorBody {
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

/// S3's errors: REST-XML `Error`, the request id also as the host id.
fn s3_error(kind: FaultKind, request_id: &str) -> ErrorBody {
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

//! The AWS operations the function calls, named once for adapters, spans, request counts and
//! metrics.

use std::fmt;

/// An AWS API operation the function calls, with its service and the name request counts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AwsOperation {
    /// DynamoDB BatchWriteItem: readings, and the alert ledger's records.
    DynamoDbBatchWriteItem,
    /// DynamoDB BatchGetItem: the alert ledger's lookup (with the episode states).
    DynamoDbBatchGetItem,
    /// DynamoDB TransactWriteItems: the episode states' conditional writes.
    DynamoDbTransactWriteItems,
    /// DynamoDB PutItem.
    DynamoDbPutItem,
    /// DynamoDB Scan: the silence check reads every episode state.
    DynamoDbScan,
    /// SNS PublishBatch to the alert topic.
    SnsPublishBatch,
    /// SNS Publish to the alert topic.
    SnsPublish,
    /// SNS PublishBatch to the on-call topic: counted and named apart from the alerts.
    SnsOnCallPublishBatch,
    /// S3 PutObject: dead letters.
    S3PutObject,
}

impl AwsOperation {
    /// The service, as `rpc.service` and the AWS SDKs name it.
    pub const fn service(self) -> &'static str {
        match self {
            Self::DynamoDbBatchWriteItem
            | Self::DynamoDbBatchGetItem
            | Self::DynamoDbTransactWriteItems
            | Self::DynamoDbPutItem
            | Self::DynamoDbScan => "DynamoDB",
            Self::SnsPublishBatch | Self::SnsPublish | Self::SnsOnCallPublishBatch => "SNS",
            Self::S3PutObject => "S3",
        }
    }

    /// The API operation on the wire (`rpc.method`, `db.operation.name`).
    pub const fn method(self) -> &'static str {
        match self {
            Self::DynamoDbBatchWriteItem => "BatchWriteItem",
            Self::DynamoDbBatchGetItem => "BatchGetItem",
            Self::DynamoDbTransactWriteItems => "TransactWriteItems",
            Self::DynamoDbPutItem => "PutItem",
            Self::DynamoDbScan => "Scan",
            Self::SnsPublishBatch | Self::SnsOnCallPublishBatch => "PublishBatch",
            Self::SnsPublish => "Publish",
            Self::S3PutObject => "PutObject",
        }
    }

    /// The name in request counts and failure messages: the method, except for the on-call
    /// publish, which is counted apart (`OnCallPublishBatch`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::SnsOnCallPublishBatch => "OnCallPublishBatch",
            other => other.method(),
        }
    }

    /// The span name of the call, `{rpc.service}.{rpc.method}` as the AWS SDK instrumentations
    /// name CLIENT spans.
    pub const fn span_name(self) -> &'static str {
        match self {
            Self::DynamoDbBatchWriteItem => "DynamoDB.BatchWriteItem",
            Self::DynamoDbBatchGetItem => "DynamoDB.BatchGetItem",
            Self::DynamoDbTransactWriteItems => "DynamoDB.TransactWriteItems",
            Self::DynamoDbPutItem => "DynamoDB.PutItem",
            Self::DynamoDbScan => "DynamoDB.Scan",
            Self::SnsPublishBatch | Self::SnsOnCallPublishBatch => "SNS.PublishBatch",
            Self::SnsPublish => "SNS.Publish",
            Self::S3PutObject => "S3.PutObject",
        }
    }

    /// Whether the call publishes alerts to the alert topic (a PRODUCER span).
    pub const fn publishes_alerts(self) -> bool {
        matches!(self, Self::SnsPublishBatch | Self::SnsPublish)
    }

    /// Whether the call publishes on-call notices to the on-call topic (a PRODUCER span).
    pub const fn publishes_notices(self) -> bool {
        matches!(self, Self::SnsOnCallPublishBatch)
    }
}

impl fmt::Display for AwsOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_join_the_service_and_the_method() {
        for op in [
            AwsOperation::DynamoDbBatchWriteItem,
            AwsOperation::DynamoDbBatchGetItem,
            AwsOperation::DynamoDbTransactWriteItems,
            AwsOperation::DynamoDbPutItem,
            AwsOperation::DynamoDbScan,
            AwsOperation::SnsPublishBatch,
            AwsOperation::SnsPublish,
            AwsOperation::SnsOnCallPublishBatch,
            AwsOperation::S3PutObject,
        ] {
            assert_eq!(op.span_name(), format!("{}.{}", op.service(), op.method()));
        }
        assert_eq!(
            AwsOperation::SnsOnCallPublishBatch.name(),
            "OnCallPublishBatch"
        );
    }
}

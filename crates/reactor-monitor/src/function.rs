//! The function, composed once: one Kinesis event (`LambdaEvent<KinesisBatch>`, decoded record
//! by record) in, the partial batch
//! response out, with its spans, EMF lines and batch log. `bootstrap` hands it to the Lambda
//! runtime; the local tools (`local`, `up`, `invoke`) call the very same value.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;

use crate::adapters::dynamodb::DynamoDbStore;
use crate::adapters::s3::S3DeadLetters;
use crate::adapters::sns::SnsAlerts;
use crate::config::Config;
use crate::kinesis::KinesisInput;
use crate::lambda::{self, BatchFailed};
use crate::pipeline::{BatchReport, Pipeline};
use crate::ports::{AlertPublisher, DeadLetterSink, EpisodeStore, OnCallPublisher, ReadingStore};
use crate::telemetry::function::{FunctionTelemetry, InvocationContext, MetricsSink, SpanExport};
use crate::telemetry::propagation::with_alert_contexts;
use crate::telemetry::traces::CallTargets;

/// The pipeline and its telemetry.
pub struct Function<S, L, P, D> {
    pub pipeline: Pipeline<S, L, P, D>,
    pub telemetry: FunctionTelemetry,
}

/// The function as deployed: DynamoDB, SNS and S3 behind the ports.
pub type AwsFunction = Function<DynamoDbStore, DynamoDbStore, SnsAlerts, S3DeadLetters>;

/// One invocation's result and the report it was built from (the local tools account with it).
pub struct Invocation {
    pub report: BatchReport,
    pub result: Result<KinesisEventResponse, BatchFailed>,
}

impl AwsFunction {
    /// The deployed composition: SDK clients from `sdk`, names and limits from `config`;
    /// spans to `provider` (none when `None`) following `config`'s plan and parenting.
    pub fn from_config(
        config: &Config,
        sdk: &aws_config::SdkConfig,
        provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
        metrics: MetricsSink,
    ) -> Self {
        let spans = provider.map(|provider| SpanExport {
            provider,
            plan: config.trace_plan,
            targets: CallTargets {
                region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
                stream_name: config.stream_name.clone(),
                table_name: config.table_name.clone(),
                episode_table_name: config
                    .episodes
                    .as_ref()
                    .map(|e| e.table_name.clone())
                    .unwrap_or_default(),
                topic_arn: config.alert_topic_arn.clone(),
                on_call_topic_arn: config
                    .episodes
                    .as_ref()
                    .map(|e| e.on_call_topic_arn.clone())
                    .unwrap_or_default(),
                bucket: config.dead_letter_bucket.clone(),
            },
            join_xray_trace: config.join_xray_trace,
        });
        Function {
            pipeline: crate::aws::pipeline(sdk, config),
            telemetry: FunctionTelemetry::new(spans, metrics),
        }
    }
}

impl<S, L, P, D> Function<S, L, P, D>
where
    S: ReadingStore,
    L: EpisodeStore,
    P: AlertPublisher + OnCallPublisher,
    D: DeadLetterSink,
{
    /// Processes one event: the invocation span, the batch, its record spans (flushed before
    /// returning), the batch log line and the EMF lines.
    pub async fn invoke<E: KinesisInput>(&self, event: LambdaEvent<E>) -> Invocation {
        let xray_trace_id = event.context.xray_trace_id.clone();
        let span = self.telemetry.start_invocation(&InvocationContext {
            request_id: &event.context.request_id,
            invoked_function_arn: &event.context.invoked_function_arn,
            xray_trace_id: xray_trace_id.as_deref(),
            records: event.payload.record_count(),
        });
        let alerts = self.telemetry.alert_contexts(&span);
        let (report, result) =
            with_alert_contexts(alerts.clone(), lambda::handle_batch(&self.pipeline, event)).await;
        self.telemetry.finish_invocation(
            span,
            &report,
            result.as_ref().err().map(|e| e as &dyn std::error::Error),
            xray_trace_id.as_deref(),
            alerts.as_deref(),
        );
        Invocation { report, result }
    }

    /// Processes one event: the partial batch response, or the whole invocation's failure
    /// when no record could be done (Lambda then retries, or bisects the batch).
    pub async fn handle<E: KinesisInput>(
        &self,
        event: LambdaEvent<E>,
    ) -> Result<KinesisEventResponse, BatchFailed> {
        self.invoke(event).await.result
    }
}

//! The template's resources, created idempotently in the emulator under the same names.

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_kinesis::client::Waiters;

use reactor_monitor::adapters::dynamodb::attr;
use reactor_monitor::aws::s3_client;
use reactor_monitor::config::{Config, EpisodeConfig, defaults};
use reactor_monitor::domain::episode::EpisodePolicy;

/// The on-failure bucket's name in the emulator (the template adds -<account>-<region>).
pub const ON_FAILURE_BUCKET: &str = "reactor-monitor-exhausted-batches";
/// How long a new stream may take to become ACTIVE.
const STREAM_ACTIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The one region where S3's CreateBucket takes no location constraint (S3 API reference,
/// CreateBucket).
const S3_REGION_WITHOUT_LOCATION_CONSTRAINT: &str = "us-east-1";

/// Names of the local resources; the defaults are the template's.
#[derive(Debug, Clone)]
pub struct ResourceNames {
    pub stream: String,
    pub table: String,
    pub alert_topic: String,
    pub dead_letter_bucket: String,
    /// The event source mapping's S3 on-failure destination (the template's OnFailureBucket).
    pub on_failure_bucket: String,
    /// The queue subscribed to the alert topic (one message per hot reading).
    pub alerts_queue: String,
    /// Per-reactor alert-episode state (key `reactor`).
    pub episode_table: String,
    /// Episode notifications for people.
    pub on_call_topic: String,
    /// The queue subscribed to the on-call topic.
    pub on_call_queue: String,
}

impl Default for ResourceNames {
    fn default() -> Self {
        Self {
            stream: defaults::STREAM_NAME.into(),
            table: defaults::TABLE_NAME.into(),
            alert_topic: defaults::ALERT_TOPIC_NAME.into(),
            dead_letter_bucket: defaults::DEAD_LETTER_BUCKET.into(),
            on_failure_bucket: ON_FAILURE_BUCKET.into(),
            alerts_queue: defaults::ALERTS_QUEUE_NAME.into(),
            episode_table: defaults::EPISODE_TABLE_NAME.into(),
            on_call_topic: defaults::ON_CALL_TOPIC_NAME.into(),
            on_call_queue: defaults::ON_CALL_QUEUE_NAME.into(),
        }
    }
}

/// What exists once the resources are created.
#[derive(Debug, Clone)]
pub struct Resources {
    pub names: ResourceNames,
    pub stream_arn: String,
    pub alert_topic_arn: String,
    pub alerts_queue_url: String,
    pub on_call_topic_arn: String,
    /// The queue of episode notifications (subscribed to the on-call topic).
    pub on_call_queue_url: String,
}

impl Resources {
    /// The handler's configuration for these resources.
    pub fn config(&self) -> Config {
        let mut config = Config::new(
            &self.names.table,
            &self.alert_topic_arn,
            &self.names.dead_letter_bucket,
        );
        config.episodes = Some(EpisodeConfig {
            table_name: self.names.episode_table.clone(),
            on_call_topic_arn: self.on_call_topic_arn.clone(),
            policy: EpisodePolicy::default(),
        });
        config
    }
}

/// Creates the template's resources that are not there yet (stream, table, alert topic,
/// dead-letter and on-failure buckets, the alerts queue subscribed to the alert topic, the
/// episode table, the on-call topic and the on-call queue subscribed to it) and waits for
/// the stream to be ACTIVE. Idempotent: a second call finds them and creates nothing.
/// Errors name the resource and the call that failed.
pub async fn create(
    sdk: &aws_config::SdkConfig,
    names: &ResourceNames,
    shards: u32,
) -> anyhow::Result<Resources> {
    let sns = aws_sdk_sns::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let stream_arn = stream(&aws_sdk_kinesis::Client::new(sdk), &names.stream, shards).await?;
    table(&dynamodb, &names.table).await?;
    episode_table(&dynamodb, &names.episode_table).await?;
    buckets(
        &s3_client(sdk),
        [&names.dead_letter_bucket, &names.on_failure_bucket],
    )
    .await?;
    // CreateTopic and CreateQueue are idempotent.
    let alert_topic_arn = topic(&sns, &names.alert_topic).await?;
    let (alerts_queue_url, alerts_queue_arn) = queue(&sqs, &names.alerts_queue).await?;
    subscribe_queue(&sns, &alert_topic_arn, &alerts_queue_arn).await?;
    let on_call_topic_arn = topic(&sns, &names.on_call_topic).await?;
    let (on_call_queue_url, on_call_queue_arn) = queue(&sqs, &names.on_call_queue).await?;
    subscribe_queue(&sns, &on_call_topic_arn, &on_call_queue_arn).await?;
    Ok(Resources {
        names: names.clone(),
        stream_arn,
        alert_topic_arn,
        alerts_queue_url,
        on_call_topic_arn,
        on_call_queue_url,
    })
}

/// A topic's ARN, the topic created when absent (CreateTopic is idempotent).
async fn topic(sns: &aws_sdk_sns::Client, name: &str) -> anyhow::Result<String> {
    sns.create_topic()
        .name(name)
        .send()
        .await
        .with_context(|| format!("creating topic {name}"))?
        .topic_arn
        .context("no topic ARN")
}

/// The stream, created with `shards` shards when absent; its ARN once it is ACTIVE.
async fn stream(
    kinesis: &aws_sdk_kinesis::Client,
    name: &str,
    shards: u32,
) -> anyhow::Result<String> {
    let mut pages = kinesis.list_streams().into_paginator().send();
    let mut exists = false;
    while let Some(page) = pages.next().await {
        exists |= page
            .context("listing streams")?
            .stream_names()
            .iter()
            .any(|s| s == name);
    }
    if !exists {
        kinesis
            .create_stream()
            .stream_name(name)
            .shard_count(shards as i32)
            .send()
            .await
            .with_context(|| format!("creating stream {name}"))?;
    }
    // The SDK's waiter: DescribeStream until ACTIVE, with backoff, within a time limit.
    let stream = kinesis
        .wait_until_stream_exists()
        .stream_name(name)
        .wait(STREAM_ACTIVE_TIMEOUT)
        .await
        .with_context(|| format!("waiting for stream {name} to become ACTIVE"))?
        .into_result()
        .context("the stream did not become ACTIVE")?;
    Ok(stream
        .stream_description
        .context("no stream description")?
        .stream_arn)
}

/// The table of readings and the alert ledger (keys: reactor, reading id), created when absent.
async fn table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    create_table(dynamodb, name, &[attr::REACTOR, attr::READING_ID]).await
}

/// The table of per-reactor alert episode states (key: reactor), created when absent.
async fn episode_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    create_table(dynamodb, name, &[attr::REACTOR]).await
}

/// An on-demand table with string keys (`keys[0]` the partition key, `keys[1]` the sort key),
/// created unless a table of that name exists.
async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[&str],
) -> anyhow::Result<()> {
    let tables: Vec<String> = dynamodb
        .list_tables()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .context("listing tables")?;
    if tables.iter().any(|t| t == name) {
        return Ok(());
    }
    let mut create = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (i, key_name) in keys.iter().enumerate() {
        let key_type = if i == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        create = create
            .attribute_definitions(attribute(key_name)?)
            .key_schema(key(key_name, key_type)?);
    }
    create
        .send()
        .await
        .with_context(|| format!("creating table {name}"))?;
    Ok(())
}

/// The buckets, created when absent, in the client's region.
async fn buckets(s3: &aws_sdk_s3::Client, names: [&String; 2]) -> anyhow::Result<()> {
    let existing: Vec<aws_sdk_s3::types::Bucket> = s3
        .list_buckets()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .context("listing buckets")?;
    // Outside us-east-1, S3 requires the region as the bucket's location constraint
    // (S3 API reference, CreateBucket: CreateBucketConfiguration.LocationConstraint).
    let constraint = s3
        .config()
        .region()
        .map(|r| r.as_ref().to_string())
        .filter(|r| r != S3_REGION_WITHOUT_LOCATION_CONSTRAINT)
        .map(|r| {
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    r.as_str(),
                ))
                .build()
        });
    for bucket in names {
        if !existing.iter().any(|b| b.name() == Some(bucket.as_str())) {
            s3.create_bucket()
                .bucket(bucket)
                .set_create_bucket_configuration(constraint.clone())
                .send()
                .await
                .with_context(|| format!("creating bucket {bucket}"))?;
        }
    }
    Ok(())
}

/// Subscribes the queue to the topic unless it already is.
async fn subscribe_queue(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
) -> anyhow::Result<()> {
    let subscriptions: Vec<aws_sdk_sns::types::Subscription> = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .context("listing subscriptions")?;
    if !subscriptions
        .iter()
        .any(|s| s.endpoint() == Some(queue_arn))
    {
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .with_context(|| format!("subscribing {queue_arn} to {topic_arn}"))?;
    }
    Ok(())
}

fn attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn key(name: &str, key_type: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()?)
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<(String, String)> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?
        .queue_url
        .context("no queue URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the queue ARN")?
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("no queue ARN")?;
    Ok((url, arn))
}

//! The local tools take the region from the SDK's standard chain: a run with
//! `AWS_DEFAULT_REGION=eu-west-1` creates, puts and reads everything in eu-west-1.

use reactor_monitor_local::emulator::Emulator;

async fn sdk_in(endpoint: &str, region: &'static str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(reactor_monitor::aws::https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_uses_the_region_of_aws_default_region() {
    let emulator = Emulator::start().await.unwrap();
    let endpoint = emulator.endpoint().to_string();
    let output = crate::cli()
        .args([
            "local",
            "--endpoint",
            &endpoint,
            "--readings",
            "40",
            "--json",
        ])
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE")
        .env(
            "AWS_CONFIG_FILE",
            "/nonexistent/reactor-monitor-test-config",
        )
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .output()
        .unwrap();
    crate::assert_success(&output);
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(run["produced"], 40);
    assert_eq!(run["lost"], 0);
    let stored = run["stored"].as_u64().unwrap();

    let eu = sdk_in(&endpoint, "eu-west-1").await;
    let us = sdk_in(&endpoint, "us-east-1").await;
    let streams = |sdk: &aws_config::SdkConfig| {
        let client = aws_sdk_kinesis::Client::new(sdk);
        async move { client.list_streams().send().await.unwrap().stream_names }
    };
    assert_eq!(streams(&eu).await, ["indications-stream"]);
    assert!(streams(&us).await.is_empty());
    let items = aws_sdk_dynamodb::Client::new(&eu)
        .scan()
        .table_name("indications-table")
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count as u64;
    // Readings, and the alert ledger's items.
    assert!(
        items >= stored,
        "{items} items for {stored} stored readings"
    );
    let us_tables = aws_sdk_dynamodb::Client::new(&us)
        .list_tables()
        .send()
        .await
        .unwrap();
    assert!(us_tables.table_names().is_empty());
}

//! The read-back is exact on a lossy network: a ReceiveMessage whose response was lost after it
//! took effect (its messages hidden for the visibility timeout) costs the verdict nothing, and a
//! message received twice counts once.

use reactor_monitor_local::testing as support;
use reactor_monitor_local::verify;

#[tokio::test]
async fn a_receive_whose_response_was_lost_hides_no_alert_from_the_read_back() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = &resources.alerts_queue_url;
    let sent: Vec<String> = (0..25).map(|i| format!("{{\"alert\":{i}}}")).collect();
    for body in &sent {
        sqs.send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    // A receive that took effect and whose response never arrived: ten messages hidden for the
    // visibility timeout it asked for, and nobody holds their receipt handles.
    let lost = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(1)
        .send()
        .await
        .unwrap();
    assert_eq!(lost.messages().len(), 10);
    drop(lost);

    let mut read = verify::drain(&sqs, queue).await.unwrap();
    read.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(read.len(), 25, "every alert delivered is read back, once");
    assert_eq!(read, expected);
}

use std::time::Duration;

use rand::Rng;

/// Retries of the items a batch call left unprocessed (UnprocessedItems, UnprocessedKeys),
/// with exponential backoff and full jitter as AWS recommends. What is still unprocessed
/// after the last attempt is reported as failed and retried by the event source mapping.
pub(crate) const UNPROCESSED_ATTEMPTS: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(25);
const MAX_DELAY: Duration = Duration::from_millis(800);

pub(crate) async fn backoff(attempt: u32) {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << attempt.min(10))
        .min(MAX_DELAY);
    let delay = rand::rng().random_range(Duration::ZERO..=ceiling);
    tokio::time::sleep(delay).await;
}

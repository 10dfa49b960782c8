//! [`FeedbackQueue`] on Amazon SQS: long polling, delete after handling.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageSystemAttributeName;

use super::http_client;
use crate::feedback::{FeedbackQueue, FeedbackQueueError, QueuedNotification};

/// At most this many notifications per receive (SQS's limit).
const BATCH: i32 = 10;

/// Reads SES feedback notifications from an SQS queue (subscribed to the SNS topic SES
/// publishes bounces and complaints to).
#[derive(Clone)]
pub struct SqsFeedbackQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
}

impl fmt::Debug for SqsFeedbackQueue {
    /// Region and queue URL; never credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsFeedbackQueue")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .field("queue_url", &self.queue_url)
            .finish_non_exhaustive()
    }
}

impl SqsFeedbackQueue {
    /// How long one receive waits for a notification (SQS's longest long poll).
    pub const LONG_POLL: Duration = Duration::from_secs(20);

    /// Builds the client from the standard AWS configuration chain, as
    /// [`SesMailer::from_env`](crate::SesMailer::from_env) does (the endpoint from
    /// `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL` when set); `region` wins over the chain's.
    /// Each receive waits up to [`Self::LONG_POLL`].
    pub async fn from_env(region: Option<String>, queue_url: &str) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    // A long poll holds the call for up to LONG_POLL.
                    .operation_attempt_timeout(Self::LONG_POLL + Duration::from_secs(10))
                    .operation_timeout(Self::LONG_POLL + Duration::from_secs(30))
                    .build(),
            );
        if let Some(region) = region.filter(|r| !r.trim().is_empty()) {
            loader = loader.region(aws_config::Region::new(region.trim().to_owned()));
        }
        let config = loader.load().await;
        Self {
            client: aws_sdk_sqs::Client::new(&config),
            queue_url: queue_url.to_owned(),
            wait: Self::LONG_POLL,
        }
    }

    /// Over an SQS client configured by the caller (this crate's test support).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn with_client(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_owned(),
            wait: Self::LONG_POLL,
        }
    }

    /// The same queue, with receives waiting at most `wait` (whole seconds, at most 20).
    #[must_use]
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Self::LONG_POLL);
        self
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn error<E>(call: &str, error: E) -> FeedbackQueueError
where
    E: std::error::Error,
{
    FeedbackQueueError(format!("{call}: {}", DisplayErrorContext(error)))
}

#[async_trait]
impl FeedbackQueue for SqsFeedbackQueue {
    async fn receive(&self) -> Result<Vec<QueuedNotification>, FeedbackQueueError> {
        let wait = i32::try_from(self.wait.as_secs()).unwrap_or(20);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| error("ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok());
                Some(QueuedNotification {
                    receipt: message.receipt_handle?,
                    body: message.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), FeedbackQueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| error("DeleteMessage", e))?;
        Ok(())
    }
}

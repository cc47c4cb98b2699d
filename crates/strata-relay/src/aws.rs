//! The AWS SDK's configuration for the SNS relay and the SQS consumer: the HTTP client
//! (rustls with ring, never aws-lc), the region, the endpoint and the credentials. It must
//! not call any AWS API.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// How long one API call may take, its retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait of a ReceiveMessage (SQS long polling), with room to answer.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK configuration for `region`, talking to AWS or, with `endpoint`, to that
/// endpoint (an emulator). With an endpoint, credentials come only from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or are
/// placeholders an emulator accepts, so nothing asks an instance metadata service;
/// without one, the SDK's default chain finds them.
pub(crate) async fn sdk_config(endpoint: Option<&str>, region: &str) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_owned()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = endpoint {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Credentials::new(id, secret, env("AWS_SESSION_TOKEN"), None, "environment")
            }
            _ => Credentials::new("strata", "strata", None, None, "placeholder"),
        };
        loader = loader
            .endpoint_url(endpoint)
            .credentials_provider(credentials);
    }
    loader.load().await
}

/// An SDK error in a sentence: the service's code and message when the service answered,
/// else the whole chain of causes (`Display` alone says only "dispatch failure").
pub(crate) fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("unknown error"),
                err.message().unwrap_or("no message")
            )
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

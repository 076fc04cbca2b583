//! AWS: clients configured once per process from the environment, and the
//! small DynamoDB kit ([`dynamodb`]) the state store and the functions share.
//!
//! The configuration honours the standard variables, including
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_KINESIS`
//! (how tests point Shardline at local emulators), but not `AWS_MAX_ATTEMPTS`
//! or `AWS_RETRY_MODE`: the SDK's own retry is set here, in [`sdk_retry`], so
//! that what one call of Shardline's may cost is known.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// Attempts the SDK makes of one request (a throttle, a 5xx or a timeout is
/// tried again inside the SDK before Shardline sees an error).
pub const SDK_MAX_ATTEMPTS: u32 = 3;

/// The SDK's own retry, for every client Shardline makes: standard mode,
/// [`SDK_MAX_ATTEMPTS`] attempts, pauses from 50 ms up to 2 s (the SDK's
/// default starts at 1 s and goes to 20 s, too long inside an invocation).
/// On top of it, Shardline's own loops ([`crate::retry::Backoff::drive`])
/// retry what the service answered but did not do: a DynamoDB commit makes
/// at most [`dynamodb::MAX_TRIES`] TransactWriteItems calls per transaction,
/// each at most [`SDK_MAX_ATTEMPTS`] requests.
pub fn sdk_retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2))
}

/// The HTTPS client every client Shardline makes sends its requests with:
/// the SDK's own client (hyper, HTTP/1.1 and HTTP/2, the system's trusted
/// roots) on rustls with the `ring` crypto provider.
///
/// The SDK's default (its `default-https-client` feature) is the same client
/// on aws-lc, whose C library makes every build of a function about 38
/// CPU-seconds longer; ring does not offer aws-lc's post-quantum key
/// exchange or a FIPS mode. A function that needs either can build its own
/// [`SdkConfig`] with the SDK's features and its clients from that.
///
/// Use it for a client of another AWS service, so that it shares the
/// provider (a client built without any HTTP client fails its first
/// request):
///
/// ```
/// # async fn example() {
/// let config = aws_config::from_env()
///     .http_client(shardline::aws::https_client())
///     .load()
///     .await;
/// # let _ = config;
/// # }
/// ```
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The shared AWS configuration, loaded on first use, with [`sdk_retry`] and
/// [`https_client`].
pub async fn config() -> &'static SdkConfig {
    CONFIG
        .get_or_init(|| {
            aws_config::from_env()
                .http_client(https_client())
                .retry_config(sdk_retry())
                .load()
        })
        .await
}

/// A DynamoDB client on the shared configuration.
#[cfg(feature = "dynamodb")]
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config().await)
}

/// A Kinesis client on the shared configuration.
#[cfg(feature = "kinesis")]
pub async fn kinesis_client() -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(config().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sdk_retry_is_set_here_not_by_the_environment() {
        let retry = sdk_retry();
        assert_eq!(retry.max_attempts(), SDK_MAX_ATTEMPTS);
        assert_eq!(retry.initial_backoff(), Duration::from_millis(50));
        assert_eq!(retry.max_backoff(), Duration::from_secs(2));
        // The loaded configuration carries it (no request is made).
        let loaded = config().await.retry_config().cloned();
        assert_eq!(loaded.map(|r| r.max_attempts()), Some(SDK_MAX_ATTEMPTS));
        // And the HTTPS client: without the SDK's default one, a client built
        // from a configuration that has none fails its first request.
        assert!(config().await.http_client().is_some());
    }

    /// The client speaks TLS through ring: what reaches a bare socket at an
    /// `https://` endpoint is a TLS handshake record (its key share made by
    /// the provider), not a plain HTTP request and not an error before any
    /// byte is sent.
    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn the_https_client_opens_with_a_tls_handshake() {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_bytes = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut bytes = [0u8; 3];
            std::io::Read::read_exact(&mut socket, &mut bytes).map(|()| bytes)
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(https_client())
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("a", "b", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        // The listener closes after three bytes: the call fails, as it must.
        assert!(client.list_tables().send().await.is_err());
        // Had the client sent nothing, this ends the wait for it.
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        let bytes = first_bytes
            .join()
            .unwrap()
            .expect("the client sent nothing to the endpoint");
        // A TLS record: content type 22 (handshake), protocol version 3.x.
        assert_eq!((bytes[0], bytes[1]), (22, 3), "{bytes:?}");
    }
}

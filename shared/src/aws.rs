//! AWS clients, configured once per process from the environment.
//!
//! `aws_config::load_from_env` honours the standard variables, including
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_KINESIS`
//! (how tests point Shardline at local emulators).

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The shared AWS configuration, loaded on first use.
pub async fn config() -> &'static SdkConfig {
    CONFIG.get_or_init(aws_config::load_from_env).await
}

/// A DynamoDB client on the shared configuration.
#[cfg(feature = "dynamodb")]
pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config().await)
}

/// A Kinesis client on the shared configuration.
#[cfg(feature = "kinesis")]
pub async fn kinesis() -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(config().await)
}

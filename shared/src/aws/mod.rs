//! AWS: clients configured once per process from the environment, and the
//! small DynamoDB kit ([`dynamodb`]) the state store and the functions share.
//!
//! `aws_config::load_from_env` honours the standard variables, including
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_KINESIS`
//! (how tests point Shardline at local emulators).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The shared AWS configuration, loaded on first use.
pub async fn config() -> &'static SdkConfig {
    CONFIG.get_or_init(aws_config::load_from_env).await
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

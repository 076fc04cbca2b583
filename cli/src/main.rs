//! `shardline-cli`: Shardline's command-line tools. `shardline-cli source` runs a
//! function against a live Kinesis stream with the Lambda event source
//! mapping's semantics, through the function's own Lambda runtime loop;
//! `shardline-cli invoke` runs it on event files the same way;
//! `shardline-cli new NAME` writes a function crate of its own;
//! `shardline-cli event` makes an event file of your own payloads.
//!
//! ```text
//! cargo run -q -p shardline-cli -- source --stream orders --until-idle 5 -- cargo run -q -p ledger
//! ```

mod args;
mod event;
mod invoke;
mod new;
mod runtime;
mod sandbox;
mod source;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use clap::Parser;

use crate::args::{Cli, Command, SourceArgs, StartingPosition};
use crate::sandbox::{FunctionSpec, Pool};
use crate::source::Mapping;
use crate::source::reader::Start;
use crate::source::shards::Shards;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Source(args) => match source(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("shardline-cli source: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Invoke(args) => invoke::run(args).await,
        Command::New(args) => match new::run(&args) {
            Ok(dir) => {
                println!(
                    "wrote {dir}/: next, cd {dir} && cargo test && cargo run -- invoke events/batch.json",
                    dir = dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("shardline-cli new: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Event(args) => match event::make(&args, std::time::SystemTime::now()) {
            Ok(event) => {
                println!("{event:#}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("shardline-cli event: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The stream's name and ARN, from either.
async fn resolve(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<(String, String), String> {
    if let Some((_, name)) = stream.split_once(":stream/") {
        return Ok((name.to_owned(), stream.to_owned()));
    }
    let described = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| {
            format!(
                "stream {stream}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?;
    let arn = described
        .stream_description_summary()
        .map(|s| s.stream_arn().to_owned())
        .ok_or_else(|| format!("stream {stream}: DescribeStreamSummary gave no ARN"))?;
    Ok((stream.to_owned(), arn))
}

async fn source(args: SourceArgs) -> Result<(), String> {
    if args.tumbling_window().is_some() && args.parallelization_factor > 1 {
        // The window's state is one per shard.
        return Err("--tumbling-window-in-seconds needs --parallelization-factor 1".into());
    }
    let start = match (args.starting_position, args.start_timestamp()?) {
        (StartingPosition::TrimHorizon, _) => Start::TrimHorizon,
        (StartingPosition::Latest, _) => Start::Latest,
        (StartingPosition::AtTimestamp, Some(at)) => Start::AtTimestamp(at),
        (StartingPosition::AtTimestamp, None) => {
            return Err("AT_TIMESTAMP needs a timestamp".into());
        }
    };
    // A request the service never answers is cut and retried: without a
    // timeout one hung GetRecords would stall its shard for good.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .build();
    // rustls on ring, as the framework's clients (`shardline::aws::https_client`).
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_config::from_env()
        .http_client(https)
        .timeout_config(timeouts)
        .retry_config(reader_retry())
        .load()
        .await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let (stream_name, stream_arn) = resolve(&client, &args.stream).await?;
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let pool = Pool::new(
        FunctionSpec::new(args.command.clone(), args.name()),
        args.per_execution_environment_max_concurrency,
    );
    let mapping = Arc::new(
        Mapping::new(&args, stream_name, stream_arn, pool.clone(), seed)
            .map_err(|e| format!("on-failure file: {e}"))?,
    );
    let until_idle = args.until_idle.map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut shards = Shards::new(mapping.clone(), client);
    let mut last_progress = Instant::now();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        if let Err(error) = shards.refresh(start).await {
            eprintln!("source: {error}; retrying");
        }
        shards.advance();
        if last_progress.elapsed() >= Duration::from_secs(2) {
            eprintln!("{}", shards.progress());
            last_progress = Instant::now();
        }
        if until_idle.is_some_and(|idle| shards.is_quiet() && mapping.quiet_for() >= idle) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut stop => break,
        }
    }
    let finished = shards.finished();
    shards.stop();
    let mut summary =
        serde_json::to_value(mapping.counters.snapshot()).map_err(|e| e.to_string())?;
    summary["cold_starts"] = pool.cold_starts().into();
    summary["shards_finished"] = finished.into();
    summary["seed"] = seed.into();
    summary["seconds"] = (started.elapsed().as_millis() as f64 / 1000.0).into();
    println!("{summary}");
    Ok(())
}

/// The reader's SDK retry: the numbers of the framework's
/// `shardline::aws::sdk_retry` (3 attempts, pauses from 50 ms to 2 s), set
/// here so that the CLI builds with the Kinesis client alone, not the
/// framework's DynamoDB, SQLite and runtime.
fn reader_retry() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2))
}

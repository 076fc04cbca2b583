//! The `ledger` binary in Lambda mode, against a minimal Lambda Runtime API
//! served on loopback by the test: it takes events from `invocation/next`,
//! answers with the partial batch response, reports a non-Kinesis event as an
//! invocation error, and prints one EMF metrics line per invocation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the function posted back for one invocation.
#[derive(Debug)]
struct Posted {
    path: String,
    body: String,
}

fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

fn reply(stream: &mut TcpStream, headers: &[(&str, String)], body: &[u8]) {
    // One request per connection: without `Connection: close` the runtime's
    // client may reuse a connection this server has already dropped, and the
    // request is lost (seen under load as a 30 s wait for an answer).
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Serves `events` one by one to `invocation/next`, forwards what is posted
/// back, then holds the last `next` open (the function waits, as in Lambda).
fn serve(listener: TcpListener, events: Vec<Vec<u8>>, posted: mpsc::Sender<Posted>) {
    let mut events = events.into_iter().enumerate();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some((method, path, body)) = read_request(&mut stream) else {
            continue;
        };
        if method == "GET" && path.ends_with("/invocation/next") {
            let Some((index, event)) = events.next() else {
                // No more events: keep the connection open until the test ends.
                std::thread::sleep(Duration::from_secs(60));
                continue;
            };
            let deadline =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
            let headers = [
                ("Lambda-Runtime-Aws-Request-Id", format!("request-{index}")),
                (
                    "Lambda-Runtime-Deadline-Ms",
                    deadline.as_millis().to_string(),
                ),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:ledger".to_owned(),
                ),
                (
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".to_owned(),
                ),
                ("Content-Type", "application/json".to_owned()),
            ];
            reply(&mut stream, &headers, &event);
        } else {
            reply(&mut stream, &[], b"{}");
            let _ = posted.send(Posted {
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    }
}

#[test]
fn in_lambda_the_binary_answers_the_runtime_api_and_prints_metrics() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let batch = std::fs::read(format!("{root}/events/ledger/batch.json")).unwrap();
    let not_kinesis = br#"{"Records":[{"eventSource":"aws:sqs","body":"x"}]}"#.to_vec();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (posted_tx, posted) = mpsc::channel();
    std::thread::spawn(move || serve(listener, vec![batch, not_kinesis], posted_tx));

    let state = std::env::temp_dir().join(format!("ledger-lambda-{}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ledger")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ledger")
        .env("SHARDLINE_STATE_DIR", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the ledger binary starts");

    let first = posted
        .recv_timeout(Duration::from_secs(30))
        .expect("a response to the batch");
    let second = posted
        .recv_timeout(Duration::from_secs(30))
        .expect("an answer to the SQS event");
    let _ = child.kill();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&state);

    assert_eq!(
        first.path,
        "/2018-06-01/runtime/invocation/request-0/response"
    );
    let response: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));

    assert_eq!(
        second.path,
        "/2018-06-01/runtime/invocation/request-1/error"
    );
    let error: serde_json::Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(error["errorType"], "Shardline.NotAKinesisEvent", "{error}");
    assert!(
        error["errorMessage"].as_str().unwrap().contains("aws:sqs"),
        "{error}"
    );

    // One EMF line per invocation, the failed one included.
    let emf: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{stdout}");
    assert_eq!(emf[0]["Function"], "ledger");
    assert_eq!(emf[0]["RecordsProcessed"], 6, "{}", emf[0]);
}

//! The Lambda Runtime API, served on a loopback port for one function process:
//! the process asks `invocation/next` for an event and posts the response or
//! an error back, exactly as inside Lambda
//! (docs: lambda/latest/dg/runtimes-api.html).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the function answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `invocation/{id}/response`: the response body.
    Response(Bytes),
    /// `invocation/{id}/error`: the error body (`errorType`, `errorMessage`).
    Error(Bytes),
}

/// One invocation on its way to the function.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event.
    pub event: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`: epoch milliseconds.
    pub deadline_ms: u64,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Answer>,
}

struct Shared {
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// When the process first asked for an event: its init ended.
    first_next: OnceLock<Instant>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    function_arn: String,
}

/// A Runtime API for one function process; stops when dropped.
pub(crate) struct RuntimeApi {
    /// Its address, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: SocketAddr,
    invocations: mpsc::Sender<Invocation>,
    server: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts an API on a free loopback port.
    ///
    /// # Errors
    /// The I/O error when no port can be bound.
    pub(crate) async fn start(function_arn: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let (invocations, next) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            next: tokio::sync::Mutex::new(next),
            first_next: OnceLock::new(),
            waiting: Mutex::new(HashMap::new()),
            function_arn,
        });
        let api_shared = shared.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            address,
            invocations,
            server,
            shared: api_shared,
        })
    }

    /// When the process first asked for an event, if it has.
    pub(crate) fn first_next(&self) -> Option<Instant> {
        self.shared.first_next.get().copied()
    }

    /// Hands `invocation` to the function's next `invocation/next`.
    ///
    /// # Errors
    /// The invocation back when the API has stopped.
    pub(crate) async fn send(&self, invocation: Invocation) -> Result<(), Invocation> {
        self.invocations.send(invocation).await.map_err(|e| e.0)
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let Some(route) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    if method == Method::GET && route == "invocation/next" {
        return Ok(next(&shared).await);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == Method::POST && route == "init/error" {
        eprintln!(
            "source: the function failed to start: {}",
            String::from_utf8_lossy(&body)
        );
        return Ok(reply(StatusCode::ACCEPTED, "{}"));
    }
    let answer = route
        .strip_prefix("invocation/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(id, kind)| match kind {
            "response" => Some((id, Answer::Response(body.clone()))),
            "error" => Some((id, Answer::Error(body.clone()))),
            _ => None,
        });
    let Some((id, answer)) = answer.filter(|_| method == Method::POST) else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let waiting = shared
        .waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
    match waiting {
        Some(sender) => {
            let _ = sender.send(answer);
            Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"))
        }
        None => Ok(reply(StatusCode::BAD_REQUEST, "unknown request id")),
    }
}

/// `invocation/next`: waits for the next invocation.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let _ = shared.first_next.set(Instant::now());
    let invocation = shared.next.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The source is stopping and the process is about to be killed: a
        // runtime waits here as it waits between invocations in Lambda.
        return std::future::pending().await;
    };
    shared
        .waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(invocation.request_id.clone(), invocation.reply);
    let mut response = Response::new(Full::new(invocation.event));
    let headers = response.headers_mut();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        (
            "lambda-runtime-deadline-ms",
            invocation.deadline_ms.to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    response
}

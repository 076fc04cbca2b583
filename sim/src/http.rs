//! The seam between the AWS SDK and a simulated service: an [`HttpClient`]
//! whose connector hands each request to an in-process [`Service`], in the
//! way the SDK's own test connectors do. The SDK clients above it (and the
//! code that uses them) run unchanged: request building, signing, retries,
//! error parsing.

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use futures_util::future::BoxFuture;

/// What a simulated service answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP answer: status and JSON body.
    Answer {
        /// The HTTP status.
        status: u16,
        /// The body (JSON).
        body: Vec<u8>,
    },
    /// No answer: the connection broke (the request may or may not have
    /// been applied; the service decides which).
    Lost,
}

impl Reply {
    /// A `200` answer with `body`.
    pub fn ok(body: &serde_json::Value) -> Self {
        Reply::Answer {
            status: 200,
            body: body.to_string().into_bytes(),
        }
    }

    /// An error answer as the AWS JSON protocols write it:
    /// `{"__type": "<code>", "message": "..."}` plus `extra` fields.
    pub fn error(status: u16, code: &str, message: &str, extra: serde_json::Value) -> Self {
        let mut body = serde_json::json!({"__type": code, "message": message});
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        Reply::Answer {
            status,
            body: body.to_string().into_bytes(),
        }
    }
}

/// A simulated AWS service behind the JSON protocol.
pub trait Service: Send + Sync + 'static {
    /// Answers one request: `operation` is the part of `X-Amz-Target` after
    /// the dot (`PutRecords`, `TransactWriteItems`), `body` its JSON. The
    /// future may sleep (on tokio's clock) to simulate latency.
    fn call(&self, operation: String, body: Vec<u8>) -> BoxFuture<'static, Reply>;
}

/// An SDK HTTP client answered by `S`.
pub struct SimHttp<S>(Arc<S>);

impl<S> SimHttp<S> {
    /// A client for `service`.
    pub fn new(service: Arc<S>) -> Self {
        SimHttp(service)
    }
}

impl<S> Clone for SimHttp<S> {
    fn clone(&self) -> Self {
        SimHttp(self.0.clone())
    }
}

impl<S> fmt::Debug for SimHttp<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimHttp")
    }
}

impl<S: Service> HttpClient for SimHttp<S> {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl<S: Service> HttpConnector for SimHttp<S> {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.split_once('.'))
            .map(|(_, op)| op.to_owned())
            .unwrap_or_default();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let reply = self.0.call(operation, body);
        HttpConnectorFuture::new(async move {
            match reply.await {
                Reply::Answer { status, body } => {
                    let status = StatusCode::try_from(status)
                        .map_err(|e| ConnectorError::other(Box::new(e), None))?;
                    Ok(Response::new(status, SdkBody::from(body)))
                }
                Reply::Lost => Err(ConnectorError::io(
                    "simulated: the connection broke before the answer".into(),
                )),
            }
        })
    }
}

//! What goes wrong with a request: a [`FaultHook`] the simulation supplies
//! sees each request (and may change the tables first, as a concurrent
//! writer would) and answers with a [`Fault`].

use std::time::Duration;

use serde_json::Value;

use super::table::Tables;

/// What goes wrong with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Nothing: the request is applied and answered.
    None,
    /// Nothing is applied; the answer is the error `code` with `status`
    /// (e.g. 400 `ThrottlingException`, 400
    /// `ProvisionedThroughputExceededException`, 500 `InternalServerError`).
    FailBefore {
        /// The HTTP status.
        status: u16,
        /// The error code.
        code: String,
    },
    /// The request is applied (whatever its outcome), then the connection
    /// breaks: the caller cannot know it landed.
    LoseAnswer,
    /// The request is applied, then the answer is the error `code` with
    /// `status` (a 500 after the write landed).
    FailAfter {
        /// The HTTP status.
        status: u16,
        /// The error code.
        code: String,
    },
    /// A `TransactWriteItems` is cancelled with `code` (`TransactionConflict`,
    /// `ThrottlingError`) as the reason of item `item` (the last one if out of
    /// range), `None` for the others; nothing is applied. Other operations
    /// are applied as if no fault.
    CancelTransaction {
        /// The index of the item the reason is given for.
        item: usize,
        /// The cancellation code.
        code: String,
    },
    /// A `BatchGetItem` or `BatchWriteItem` leaves `share` (0 to 1) of its
    /// keys or items unprocessed: the last `ceil(n × share)` in request order
    /// (tables by name, then as listed). All of them unprocessed is a
    /// `ProvisionedThroughputExceededException`, as DynamoDB answers. Other
    /// operations are applied as if no fault.
    Unprocessed {
        /// The part left unprocessed.
        share: f64,
    },
    /// The request is applied after a pause (on tokio's clock), then
    /// answered. A caller that gives up during the pause (a timeout) leaves
    /// it unapplied; to land a write the caller never hears of, use
    /// [`Fault::LoseAnswer`].
    Delay(Duration),
    /// A pause, then another fault.
    DelayThen(Duration, Box<Fault>),
}

impl Fault {
    /// A 400 `ThrottlingException` before anything is applied.
    pub fn throttling() -> Self {
        Fault::FailBefore {
            status: 400,
            code: "ThrottlingException".into(),
        }
    }

    /// A 400 `ProvisionedThroughputExceededException` before anything is applied.
    pub fn throughput_exceeded() -> Self {
        Fault::FailBefore {
            status: 400,
            code: "ProvisionedThroughputExceededException".into(),
        }
    }

    /// A 500 `InternalServerError` before anything is applied.
    pub fn internal_error() -> Self {
        Fault::FailBefore {
            status: 500,
            code: "InternalServerError".into(),
        }
    }

    /// A transaction cancelled for a conflict on item `item`.
    pub fn conflict(item: usize) -> Self {
        Fault::CancelTransaction {
            item,
            code: "TransactionConflict".into(),
        }
    }
}

/// One request, as a [`FaultHook`] sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The operation (`PutItem`, `TransactWriteItems`, ...).
    pub operation: &'a str,
    /// The request's JSON.
    pub body: &'a Value,
    /// Which request of this operation it is, from 1.
    pub number: u64,
    /// Which request of any operation it is, from 1.
    pub sequence: u64,
}

impl Request<'_> {
    /// The tables the request names (`TableName`, the tables of a batch, the
    /// items of a transaction), in order, without repeats.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut push = |name: Option<&str>| {
            if let Some(name) = name
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        };
        push(self.body.get("TableName").and_then(Value::as_str));
        if let Some(items) = self.body.get("RequestItems").and_then(Value::as_object) {
            items.keys().for_each(|name| push(Some(name)));
        }
        for item in self.transact_items() {
            let action = item.as_object().and_then(|o| o.values().next());
            push(
                action
                    .and_then(|a| a.get("TableName"))
                    .and_then(Value::as_str),
            );
        }
        names
    }

    /// The items of a `TransactWriteItems` (empty for other operations).
    pub fn transact_items(&self) -> &[Value] {
        self.body
            .get("TransactItems")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// Decides, per request, what goes wrong. It runs before the request is
/// applied, with the tables in hand: changing them simulates a concurrent
/// writer that got there first. Closures
/// `FnMut(&Request<'_>, &mut Tables) -> Fault` are hooks. It runs under the
/// service's lock: it must not call the service (use the tables it is given).
pub trait FaultHook: Send {
    /// The fault for `request`.
    fn decide(&mut self, request: &Request<'_>, tables: &mut Tables) -> Fault;
}

impl<F> FaultHook for F
where
    F: FnMut(&Request<'_>, &mut Tables) -> Fault + Send,
{
    fn decide(&mut self, request: &Request<'_>, tables: &mut Tables) -> Fault {
        self(request, tables)
    }
}

/// A hook that answers `fault` to the first `times` requests of `operation`,
/// and lets every other request through.
///
/// ```
/// use shardline_sim::dynamodb::{Fault, first_requests};
/// let hook = first_requests("TransactWriteItems", 2, Fault::throttling());
/// # let _ = hook;
/// ```
pub fn first_requests(operation: &'static str, times: u64, fault: Fault) -> impl FaultHook {
    move |request: &Request<'_>, _: &mut Tables| {
        if request.operation == operation && request.number <= times {
            fault.clone()
        } else {
            Fault::None
        }
    }
}

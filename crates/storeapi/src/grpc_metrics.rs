//! gRPC call metrics with the names and labels of go-grpc-prometheus, which Thanos exports
//! and its dashboards read: `grpc_{server,client}_started_total`,
//! `grpc_{server,client}_handled_total` (with `grpc_code`) and
//! `grpc_{server,client}_handling_seconds`, each labelled `grpc_service`, `grpc_method` and
//! `grpc_type`. A call is counted when it starts and again when it ends with its code; a
//! stream ends when its last frame went out, at its first error, or when it is dropped
//! (the peer went away: `Canceled`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tonic::{Code, Status};

/// Thanos's buckets for gRPC handling times (seconds).
const BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0, 360.0,
    720.0,
];

/// Which side of the call this process is.
#[derive(Clone, Copy)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Server => "grpc_server",
            Side::Client => "grpc_client",
        }
    }
}

/// One call in flight.
pub struct Call {
    side: Side,
    service: &'static str,
    method: &'static str,
    kind: &'static str,
    started: Instant,
}

/// Counts a call as started. `kind` is `unary` or `server_stream`.
pub fn start(side: Side, service: &'static str, method: &'static str, kind: &'static str) -> Call {
    let labels = [
        ("grpc_method", method),
        ("grpc_service", service),
        ("grpc_type", kind),
    ];
    telemetry::counter(
        &format!("{}_started_total", side.prefix()),
        "Total number of RPCs started.",
        &labels,
    )
    .inc();
    Call {
        side,
        service,
        method,
        kind,
        started: Instant::now(),
    }
}

impl Call {
    /// Counts the call as handled with `code` and records how long it took.
    pub fn finish(self, code: Code) {
        let p = self.side.prefix();
        let labels = [
            ("grpc_method", self.method),
            ("grpc_service", self.service),
            ("grpc_type", self.kind),
        ];
        telemetry::counter(
            &format!("{p}_handled_total"),
            "Total number of RPCs completed, regardless of success or failure.",
            &[
                ("grpc_code", code_name(code)),
                ("grpc_method", self.method),
                ("grpc_service", self.service),
                ("grpc_type", self.kind),
            ],
        )
        .inc();
        telemetry::histogram(
            &format!("{p}_handling_seconds"),
            "Histogram of response latency (seconds) of gRPC until it is finished by the application.",
            &labels,
            BUCKETS,
        )
        .observe(self.started.elapsed().as_secs_f64());
    }

    /// Finishes the call with the outcome of a unary result.
    pub fn finish_with<T>(self, r: &Result<T, Status>) {
        self.finish(r.as_ref().map_or_else(|e| e.code(), |_| Code::Ok));
    }
}

/// The methods this crate serves: (service, method, type).
pub const SERVED: &[(&str, &str, &str)] = &[
    ("thanos.Store", "Series", "server_stream"),
    ("thanos.Store", "LabelNames", "unary"),
    ("thanos.Store", "LabelValues", "unary"),
    ("thanos.info.Info", "Info", "unary"),
];

const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// Registers every served method's series at zero, every code included, as
/// go-grpc-prometheus's `InitializeMetrics` does: rates and alerts see the methods before
/// their first call.
pub fn initialize_server_metrics() {
    for &(service, method, kind) in SERVED {
        let labels = [
            ("grpc_method", method),
            ("grpc_service", service),
            ("grpc_type", kind),
        ];
        telemetry::counter(
            "grpc_server_started_total",
            "Total number of RPCs started.",
            &labels,
        );
        for code in CODES {
            telemetry::counter(
                "grpc_server_handled_total",
                "Total number of RPCs completed, regardless of success or failure.",
                &[
                    ("grpc_code", code_name(code)),
                    ("grpc_method", method),
                    ("grpc_service", service),
                    ("grpc_type", kind),
                ],
            );
        }
        telemetry::histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC until it is finished by the application.",
            &labels,
            BUCKETS,
        );
    }
}

/// gRPC's name for a status code, as Go spells it.
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// A stream of call results that finishes its [`Call`] when it ends.
pub struct Instrumented<S> {
    inner: S,
    call: Option<Call>,
}

impl<S> Instrumented<S> {
    pub fn new(inner: S, call: Call) -> Self {
        Instrumented {
            inner,
            call: Some(call),
        }
    }
}

impl<S, T> Stream for Instrumented<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(c) = self.call.take() {
                    c.finish(Code::Ok);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(c) = self.call.take() {
                    c.finish(e.code());
                }
            }
            _ => {}
        }
        polled
    }
}

impl<S> Drop for Instrumented<S> {
    fn drop(&mut self) {
        if let Some(c) = self.call.take() {
            c.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn streams_finish_once_with_their_outcome() {
        let ok = futures::stream::iter(vec![Ok::<u8, Status>(1), Ok(2)]);
        let call = start(Side::Server, "test.Svc", "Ok", "server_stream");
        let got: Vec<_> = Instrumented::new(ok, call).collect().await;
        assert_eq!(got.len(), 2);
        let failing = futures::stream::iter(vec![Ok::<u8, Status>(1), Err(Status::internal("x"))]);
        let call = start(Side::Server, "test.Svc", "Fail", "server_stream");
        let _: Vec<_> = Instrumented::new(failing, call).collect().await;
        let dropped = futures::stream::iter(vec![Ok::<u8, Status>(1)]);
        drop(Instrumented::new(
            dropped,
            start(Side::Server, "test.Svc", "Gone", "server_stream"),
        ));
        let text = telemetry::render();
        for want in [
            "grpc_server_started_total{grpc_method=\"Ok\",grpc_service=\"test.Svc\",grpc_type=\"server_stream\"} 1",
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Ok\"",
            "grpc_server_handled_total{grpc_code=\"Internal\",grpc_method=\"Fail\"",
            "grpc_server_handled_total{grpc_code=\"Canceled\",grpc_method=\"Gone\"",
            "grpc_server_handling_seconds_bucket{grpc_method=\"Ok\",grpc_service=\"test.Svc\",grpc_type=\"server_stream\",le=\"0.001\"}",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}

//! The `stdout` sink: each message followed by LF on standard output, for
//! trying a pipeline (`siemfwd … | less`).
//!
//! One write per batch, then flush. A failing standard output (most often
//! a closed pipe, `EPIPE`) does not come back by waiting, so it is not
//! retried: `send` returns [`Error::Connection`] and the pipeline stops.
//! Messages are written as they are, one per line: the pipeline asks the
//! formatter to escape CR, LF and NUL for stdout as for LF framing
//! (`SinkConfig::wire`), so a multi-line value stays on its line.

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{describe_io, Error, Framing, Inner, Messages, Spec, Stats, Wire};

/// The `stdout` transport.
pub(super) const SPEC: Spec = Spec {
    name: "stdout",
    keys: &[],
    wire: |_| Wire {
        newline_terminated: true,
        max_message: None,
        tap_framing: Framing::Lf,
        waits_for_receiver: false,
    },
    build: |_, _| Ok(Inner::Stdout(StdoutSink::new())),
};

/// The `stdout` sink.
#[derive(Debug)]
pub(crate) struct StdoutSink {
    out: tokio::io::Stdout,
    /// A batch not built LF-framed ([`super::Sink::batch_framing`]),
    /// framed again.
    buf: Messages,
    stats: Stats,
}

impl StdoutSink {
    pub(crate) fn new() -> Self {
        Self {
            out: tokio::io::stdout(),
            buf: Messages::with_framing(Some(Framing::Lf)),
            stats: Stats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let bytes = if msgs.framing() == Some(Framing::Lf) {
            msgs.framed()
        } else {
            self.buf.clear();
            self.buf.extend_from(msgs);
            self.buf.framed()
        };
        let out = &mut self.out;
        let written = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            r = async {
                out.write_all(bytes).await?;
                out.flush().await
            } => r,
        };
        written.map_err(|e| {
            let cause = format!("writing to standard output: {}", describe_io(&e));
            self.stats.last_error = Some(cause.clone());
            Error::Connection(cause)
        })
    }

    pub(crate) async fn close(&mut self) {
        if let Err(e) = self.out.flush().await {
            tracing::debug!(error = %describe_io(&e), "flushing standard output");
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{batch, config};
    use super::super::Sink;

    #[tokio::test]
    async fn stdout_writes_a_batch_and_needs_no_connection() {
        let mut sink = Sink::build(&config("stdout", ""), &crate::counters::Metrics::default())
            .expect("build");
        sink.check().await.expect("check");
        sink.send(
            &batch(&["siemfwd sink stdout test line"]),
            &CancellationToken::new(),
        )
        .await
        .expect("send");
        sink.close().await;
        assert_eq!(sink.stats().last_error, None);
    }

    #[tokio::test]
    async fn stdout_cancelled_before_writing_reports_cancelled() {
        let mut sink = Sink::build(&config("stdout", ""), &crate::counters::Metrics::default())
            .expect("build");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = sink.send(&batch(&["never shown"]), &cancel).await;
        assert!(matches!(r, Err(super::super::Error::Cancelled)), "{r:?}");
    }
}

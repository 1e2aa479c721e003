//! The RELP side of `siemfwd listen`: a session per connection, each
//! `syslog` command answered once its message is written.
//!
//! Per read: every complete frame is handled in order; the messages of the
//! `syslog` commands are rendered and handed to the writer, and only when
//! the writer says they are written (and flushed) do their `rsp 200 OK`
//! go back, in command order. So what a sender saw acknowledged is what the
//! output shows — the property a RELP sender's checkpoint rests on.
//!
//! `open` is answered with our offers (`relp_version=0`, `commands=syslog`,
//! `relp_software`); an `open` whose offers lack `commands=syslog` is
//! refused and the session closed. `close` is answered and ends the
//! session. A command before `open`, or one we do not know, is answered
//! `500`. A framing error closes the connection (the RELP rule).

use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::output::Origin;
use super::{bump, send_and_wait, Connection};
use crate::relp::{self, Frame};

/// Bytes read at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What one `syslog` command gets.
enum Answer {
    Ok(u32),
    Refused(u32),
    /// `close`: answered, not counted as a message.
    Closed(u32),
    /// Any other answer (to `open`, to a command we do not take), in its
    /// place among the others.
    Reply(u32, Vec<u8>),
}

impl Connection {
    pub(super) async fn serve_relp<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let origin = Origin {
            transport: self.transport,
            peer: &self.peer,
        };
        let faults = self.shared.relp_faults;
        let max_data = self.shared.max_message;
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut out = Vec::new();
        let mut answers: Vec<Answer> = Vec::new();
        let mut replies = Vec::new();
        let mut opened = false;
        // librelp checks that transaction numbers come in sequence; so do
        // we, so that a sender's numbering mistake shows here.
        let mut expected: Option<u32> = None;
        loop {
            let at = buf.len();
            buf.resize(at + READ_CHUNK, 0);
            let read = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = stream.read(&mut buf[at..]) => r,
            };
            let n = match read {
                Ok(0) => {
                    tracing::debug!(peer = %self.peer, "RELP connection closed");
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(transport = self.transport, peer = %self.peer, error = %e, "read failed, closing connection");
                    return;
                }
            };
            buf.truncate(at + n);
            let mut taken = 0;
            let mut close = false;
            loop {
                let frame = match relp::parse(&buf[taken..], max_data) {
                    Ok(Some((frame, len))) => {
                        taken += len;
                        frame
                    }
                    Ok(None) => break,
                    Err(e) => {
                        bump(&self.shared.stats.framing_errors, 1);
                        tracing::warn!(transport = self.transport, peer = %self.peer, error = %e, "framing error, closing connection");
                        return;
                    }
                };
                if expected.is_some_and(|t| t != frame.txnr) {
                    bump(&self.shared.stats.framing_errors, 1);
                    tracing::warn!(transport = self.transport, peer = %self.peer, txnr = frame.txnr, expected = expected.unwrap_or_default(), "RELP transaction number out of sequence, closing connection");
                    return;
                }
                expected = Some(relp::next_txnr(frame.txnr));
                match (frame.command, opened) {
                    ("open", _) => {
                        let (accepted, answer) = open(&frame);
                        answers.push(Answer::Reply(frame.txnr, answer));
                        opened = accepted;
                        close = !opened;
                    }
                    ("syslog", true) => {
                        let seen = self.shared.relp_seen.fetch_add(1, Ordering::Relaxed) + 1;
                        if faults.refuse_every > 0 && seen % faults.refuse_every == 0 {
                            answers.push(Answer::Refused(frame.txnr));
                        } else {
                            self.shared.message(origin, frame.data, &mut out);
                            answers.push(Answer::Ok(frame.txnr));
                        }
                    }
                    ("close", true) => {
                        // Answered after the messages before it.
                        close = true;
                        answers.push(Answer::Closed(frame.txnr));
                        break;
                    }
                    (command, _) => {
                        let why = if opened {
                            format!("500 unknown command {command}")
                        } else {
                            format!("500 {command} before open")
                        };
                        answers.push(Answer::Reply(frame.txnr, why.into_bytes()));
                    }
                }
                if close {
                    break;
                }
            }
            buf.drain(..taken);
            // The messages first, then their answers.
            if !send_and_wait(&self.tx, &mut out).await {
                return;
            }
            for answer in answers.drain(..) {
                match answer {
                    Answer::Ok(txnr) => {
                        if !faults.withhold_acks {
                            bump(&self.shared.stats.relp_acked, 1);
                            relp::write_frame(&mut replies, txnr, "rsp", b"200 OK");
                        }
                    }
                    Answer::Closed(txnr) => {
                        relp::write_frame(&mut replies, txnr, "rsp", b"200 OK");
                    }
                    Answer::Reply(txnr, data) => {
                        relp::write_frame(&mut replies, txnr, "rsp", &data);
                    }
                    Answer::Refused(txnr) => {
                        bump(&self.shared.stats.relp_refused, 1);
                        relp::write_frame(
                            &mut replies,
                            txnr,
                            "rsp",
                            b"500 refused by siemfwd listen (--relp-refuse-every)",
                        );
                    }
                }
            }
            if !replies.is_empty() {
                if !faults.answer_delay.is_zero() {
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(faults.answer_delay) => {}
                    }
                }
                // Flushed: over TLS the records may otherwise wait in the
                // TLS layer while we go back to reading.
                let written = tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    r = async {
                        stream.write_all(&replies).await?;
                        stream.flush().await
                    } => r,
                };
                if let Err(e) = written {
                    tracing::debug!(peer = %self.peer, error = %e, "RELP answer not sent");
                    return;
                }
                replies.clear();
            }
            if close {
                tokio::select! {
                    _ = self.cancel.cancelled() => {}
                    _ = stream.shutdown() => {}
                }
                return;
            }
        }
    }
}

/// The answer to an `open`, and whether its offers are ones we serve.
fn open(frame: &Frame<'_>) -> (bool, Vec<u8>) {
    let offers = relp::offers(frame.data);
    let syslog = offers
        .iter()
        .any(|(n, v)| n == "commands" && v.split(',').any(|c| c.trim() == "syslog"));
    if !syslog {
        return (false, b"500 commands=syslog is required".to_vec());
    }
    let answer = format!(
        "200 OK\nrelp_version={}\nrelp_software=siemfwd-listen,{}\ncommands=syslog",
        relp::VERSION,
        env!("CARGO_PKG_VERSION")
    );
    (true, answer.into_bytes())
}

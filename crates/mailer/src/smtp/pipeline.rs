//! The exchange on one connection, with PIPELINING (RFC 2920) when the server offers it: see
//! [`Driver`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};

use super::classify::{Failure, failure_of, timed_out, unanswered};
use super::pool::{Connection, Pending, Pool};

/// The task that sends waiting messages over one connection, one after the other, until none
/// is waiting.
///
/// With PIPELINING (RFC 2920) and an ASCII message, a message's `MAIL`, `RCPT` and `DATA` go out
/// in one write; once `DATA` is accepted, its content (dot-stuffed, with the final `.`) goes out
/// in the same write as the next waiting message's `MAIL`, `RCPT` and `DATA` (the content may
/// start a group, `DATA` must end one), so under load a message costs one write and one round
/// trip. The replies are read in order: the content's reply answers its message, the first
/// refusal among the next message's commands answers that one, and `RSET` clears the refused
/// transaction before the connection goes on. Without PIPELINING, or for a message that needs
/// SMTPUTF8 or 8BITMIME, lettre sends it one command at a time.
///
/// When the connection breaks (an I/O error, such as a server that closed an idle connection)
/// after a message's commands went out but before any reply refused them, nothing of it was
/// delivered, so it goes back to the front of the queue for another connection (once). A
/// refusal (a `421` "closing" reply too) is that message's answer, for the caller's retry
/// policy; a message whose content went out gets the error, as its delivery is unknown. Every
/// wait is bounded by the oldest message's send timeout; a message whose exchange timed out
/// is not tried again here.
pub(super) struct Driver {
    pub(super) pool: Arc<Pool>,
    pub(super) conn: Option<Connection>,
    /// A message whose `DATA` was accepted and whose content is still to be sent.
    pub(super) open: Option<(Pending, String)>,
    /// Whether this driver was counted out of `Queue::drivers` already.
    pub(super) stopped: bool,
}

impl Drop for Driver {
    /// A driver that did not stop on its own (it panicked, or its runtime is shutting down)
    /// makes room for another.
    fn drop(&mut self) {
        if !self.stopped {
            self.pool.queue().drivers -= 1;
        }
    }
}

impl Driver {
    pub(super) fn new(pool: Arc<Pool>) -> Self {
        Self {
            pool,
            conn: None,
            open: None,
            stopped: false,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            let next = if self.open.is_some() {
                self.pool.next(&mut self.pool.queue())
            } else {
                match self.next_or_stop() {
                    Some(next) => Some(next),
                    None => return,
                }
            };
            match next {
                Some(next) => self.send(next).await,
                None => self.finish_open().await,
            }
        }
    }

    /// The next waiting message; when there is none, parks the connection and stops, in one
    /// step under the queue's lock, so that a message queued meanwhile starts a new driver,
    /// which finds the connection idle.
    pub(super) fn next_or_stop(&mut self) -> Option<Pending> {
        let mut queue = self.pool.queue();
        if let Some(next) = self.pool.next(&mut queue) {
            return Some(next);
        }
        if let Some(conn) = self.conn.take().filter(|c| !c.smtp.has_broken()) {
            self.pool.idle.put(conn, Instant::now());
        }
        queue.drivers -= 1;
        self.stopped = true;
        None
    }

    /// Sends `next` (and the open message's content), on this driver's connection or a new one.
    pub(super) async fn send(&mut self, next: Pending) {
        let timeout = self.pool.endpoint.send_timeout;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => match tokio::time::timeout_at(next.deadline, self.pool.connection()).await {
                Ok(Ok(conn)) => self.conn.insert(conn),
                Ok(Err(failure)) => return next.answer(Err(failure.into_parts())),
                Err(_elapsed) => return next.answer(Err(timed_out(timeout))),
            },
        };
        if !(conn.pipelining && next.plain) {
            self.finish_open().await;
            return self.send_one_by_one(next).await;
        }
        let text = match std::str::from_utf8(&next.email) {
            Ok(text) => dot_stuffed(text),
            // `plain` means ASCII, so this does not happen; lettre copes either way.
            Err(_) => {
                self.finish_open().await;
                return self.send_one_by_one(next).await;
            }
        };
        let open = self.open.take();
        // The content, if any, and three short commands.
        let mut write =
            String::with_capacity(open.as_ref().map_or(0, |(_, content)| content.len()) + 512);
        if let Some((_, content)) = &open {
            write.push_str(content);
        }
        write.push_str(&Mail::new(next.envelope.from().cloned(), vec![]).to_string());
        for to in next.envelope.to() {
            write.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        write.push_str(&Data.to_string());
        let expected = usize::from(open.is_some()) + next.envelope.to().len() + 2;
        // Messages are taken in order, so the open one's deadline comes first.
        let deadline = open
            .as_ref()
            .map_or(next.deadline, |(open, _)| open.deadline);
        let (mut replies, broke) = round_trip(conn, &write, expected, deadline, timeout).await;
        let mut replies = replies.drain(..);
        if let Some((pending, _)) = open {
            match replies.next() {
                Some(Ok(())) => pending.answer(Ok(())),
                Some(Err(error)) => pending.answer(Err(error)),
                None => pending.answer(Err(broke.clone().unwrap_or_else(unanswered))),
            }
        }
        let commands: Vec<_> = replies.collect();
        let refusal = commands.iter().find_map(|r| r.as_ref().err()).cloned();
        match (refusal, broke) {
            (None, None) => self.open = Some((next, text)),
            (None, Some(error)) if error.0 == Failure::Timeout => {
                // Its send timeout is (nearly) over too: give up rather than try again.
                self.conn = None;
                next.answer(Err(error));
            }
            (None, Some(error)) => {
                // The content never went out, and the server refused nothing: another
                // connection may send it.
                self.conn = None;
                self.pool.retry(next, error);
            }
            // The server's refusal is the answer (a 421 "closing" reply too: the worker's
            // retry policy decides, and counts it as an attempt).
            (Some(error), broke) => {
                // `DATA` accepted after a refused `MAIL` or `RCPT` would wait for content we
                // will not send: drop the connection rather than guess.
                if broke.is_some() || matches!(commands.last(), Some(Ok(()))) {
                    self.conn = None;
                } else if let Some(conn) = &mut self.conn {
                    let reset =
                        tokio::time::timeout_at(next.deadline, conn.smtp.command(Rset)).await;
                    if !matches!(reset, Ok(Ok(_))) {
                        self.conn = None;
                    }
                }
                next.answer(Err(error));
            }
        }
    }

    /// Sends the open message's content on its own (no message is waiting to go with it).
    pub(super) async fn finish_open(&mut self) {
        let Some((pending, content)) = self.open.take() else {
            return;
        };
        let Some(conn) = &mut self.conn else {
            return pending.answer(Err(unanswered()));
        };
        let timeout = self.pool.endpoint.send_timeout;
        let (mut replies, broke) = round_trip(conn, &content, 1, pending.deadline, timeout).await;
        if broke.is_some() {
            self.conn = None;
        }
        match replies.pop() {
            Some(reply) => pending.answer(reply),
            None => pending.answer(Err(broke.unwrap_or_else(unanswered))),
        }
    }

    /// Sends `next` through lettre, one command at a time (lettre drops the connection after
    /// any refusal).
    pub(super) async fn send_one_by_one(&mut self, next: Pending) {
        let Some(conn) = &mut self.conn else {
            // `finish_open` lost the connection: `next` was not sent, it waits for another.
            return self.pool.queue().waiting.push_front(next);
        };
        let timeout = self.pool.endpoint.send_timeout;
        let send = conn.smtp.send(&next.envelope, &next.email);
        let timed_out_midway = match tokio::time::timeout_at(next.deadline, send).await {
            Ok(Ok(_)) => {
                next.answer(Ok(()));
                false
            }
            Ok(Err(error)) => {
                next.fail(&error);
                false
            }
            Err(_elapsed) => {
                next.answer(Err(timed_out(timeout)));
                true
            }
        };
        // lettre drops (marks broken) a connection after any error; after a timeout its state
        // mid-transaction is unknown.
        if timed_out_midway || self.conn.as_ref().is_none_or(|c| c.smtp.has_broken()) {
            self.conn = None;
        }
    }
}

/// Writes `write` and reads up to `expected` replies, each a success or the server's refusal.
/// Stops at the first I/O or protocol error, or at `deadline` (a `timeout` after the first
/// message's send began), and returns it as the second value: the connection is then broken
/// and must be dropped.
pub(super) async fn round_trip(
    conn: &mut Connection,
    write: &str,
    expected: usize,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> (
    Vec<Result<(), (Failure, String)>>,
    Option<(Failure, String)>,
) {
    let mut replies = Vec::with_capacity(expected);
    let mut reply = tokio::time::timeout_at(deadline, conn.smtp.command(write)).await;
    loop {
        match reply {
            Err(_elapsed) => return (replies, Some(timed_out(timeout))),
            Ok(Err(error)) if error.status().is_none() => {
                return (replies, Some((failure_of(&error), error.to_string())));
            }
            Ok(Err(error)) => replies.push(Err((failure_of(&error), error.to_string()))),
            Ok(Ok(_)) => replies.push(Ok(())),
        }
        if replies.len() >= expected {
            return (replies, None);
        }
        reply = tokio::time::timeout_at(deadline, conn.smtp.read_response()).await;
    }
}

/// The message as sent after `DATA`: a `.` doubled at the start of every line (RFC 5321
/// §4.5.2, as lettre does it), then `\r\n.\r\n`.
pub(super) fn dot_stuffed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        out.push('.');
    }
    let mut rest = text;
    while let Some(at) = rest.find("\r\n.") {
        out.push_str(&rest[..at + 3]);
        out.push('.');
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out.push_str("\r\n.\r\n");
    out
}

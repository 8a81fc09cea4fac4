//! Reading a response body under the low-speed limit, counting what arrived, so that a
//! stalled or trickling server ends in [`Error::TooSlow`] and a cut connection in
//! [`Error::Broken`] naming the bytes received.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, Response};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A response body being read.
pub(crate) struct Body {
    resp: Response,
    method: Method,
    url: String,
    received: u64,
    /// Bytes per second that must arrive on average over `time`; 0 disables the check.
    limit: u64,
    time: Duration,
    /// The request's overall deadline, for the error message.
    deadline: Duration,
    window_start: Instant,
    window_bytes: u64,
}

impl Body {
    pub(crate) fn new(resp: Response, method: &Method, config: &crate::ClientConfig) -> Body {
        Body {
            url: resp.url().to_string(),
            resp,
            method: method.clone(),
            received: 0,
            limit: config.low_speed_limit,
            time: config.low_speed_time,
            deadline: config.request_timeout,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Body bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of the body, `None` at its end.
    ///
    /// # Errors
    /// [`Error::TooSlow`], [`Error::TimedOut`] (the request deadline), [`Error::Broken`].
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let next = if self.limit == 0 || self.time.is_zero() {
                Ok(self.resp.chunk().await)
            } else {
                tokio::time::timeout_at(self.window_start + self.time, self.resp.chunk()).await
            };
            match next {
                Ok(Ok(Some(c))) => {
                    self.received += c.len() as u64;
                    self.window_bytes += c.len() as u64;
                    self.check_speed()?;
                    return Ok(Some(c));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) if e.is_timeout() => {
                    return Err(Error::TimedOut {
                        method: self.method.clone(),
                        url: self.url.clone(),
                        phase: "the request",
                        limit: self.deadline,
                        received: self.received,
                    });
                }
                Ok(Err(source)) => {
                    return Err(Error::Broken {
                        method: self.method.clone(),
                        url: self.url.clone(),
                        received: self.received,
                        source,
                    });
                }
                // Nothing for a whole window: the check below decides.
                Err(_elapsed) => self.check_speed()?,
            }
        }
    }

    /// At the end of each window of `time`, at least `limit * time` bytes must have come.
    fn check_speed(&mut self) -> Result<()> {
        if self.limit == 0 || self.time.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        if now.duration_since(self.window_start) < self.time {
            return Ok(());
        }
        let needed = (self.limit as f64 * self.time.as_secs_f64()) as u64;
        if self.window_bytes < needed {
            return Err(Error::TooSlow {
                method: self.method.clone(),
                url: self.url.clone(),
                received: self.received,
                window: self.window_bytes,
                limit: self.limit,
                time: self.time,
            });
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }
}

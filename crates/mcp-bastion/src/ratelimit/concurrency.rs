//! Concurrency caps per key: requests in flight (until their response body
//! ends, so an SSE-streamed answer counts while it streams) and open `GET`
//! streams.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use http::{Method, request::Parts};

use super::{KeyBy, key::RateKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Request,
    Stream,
}

type Counts = Arc<Mutex<HashMap<(RateKey, Kind), u32>>>;

pub(crate) struct Concurrency {
    key: KeyBy,
    max_requests: Option<u32>,
    max_streams: Option<u32>,
    counts: Counts,
}

/// Holds one slot; frees it when dropped (with the response body).
#[derive(Debug)]
pub(crate) struct Permit {
    counts: Counts,
    slot: (RateKey, Kind),
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.slot) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.slot);
            }
        }
    }
}

impl Concurrency {
    pub(crate) fn new(key: KeyBy, max_requests: Option<u32>, max_streams: Option<u32>) -> Self {
        Self {
            key,
            max_requests,
            max_streams,
            counts: Arc::default(),
        }
    }

    /// `Ok(None)`: not capped. `Err(name)`: over the cap named.
    pub(crate) fn acquire(
        &self,
        parts: &Parts,
        ip: Option<IpAddr>,
    ) -> Result<Option<Permit>, &'static str> {
        let (kind, max, name) = match parts.method {
            Method::GET => (Kind::Stream, self.max_streams, "streams"),
            Method::POST => (Kind::Request, self.max_requests, "concurrency"),
            _ => return Ok(None),
        };
        let Some(max) = max else { return Ok(None) };
        let slot = (self.key.resolve(parts, ip), kind);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(slot.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&slot);
            }
            return Err(name);
        }
        *n += 1;
        Ok(Some(Permit {
            counts: self.counts.clone(),
            slot,
        }))
    }

    pub(crate) fn in_use(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.values().map(|n| *n as usize).sum()
    }
}

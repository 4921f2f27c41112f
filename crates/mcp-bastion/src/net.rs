//! Trusted proxies: client IP and external base URL (being written).

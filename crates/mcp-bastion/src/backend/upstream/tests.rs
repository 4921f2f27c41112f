//! Unit tests of the upstream backend against small in-process upstreams.

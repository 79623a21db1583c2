//! End-to-end tests: the real `certplane` binary in `--dev` mode, driven by the official
//! `aws-sdk-iot` crate (and a raw HTTP client for what the SDK cannot send).
//!
//! Run with `cargo test -p certplane --test it`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod certificates;
mod postgres;
mod race;
mod restart;
mod throttle;
mod transfers;
mod wire;

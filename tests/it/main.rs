//! One integration-test binary: every test drives a real server over HTTP.

mod abuse;
mod cli;
mod flow;
mod harness;
mod revocation;
mod store;

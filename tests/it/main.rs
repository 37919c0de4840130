//! One integration-test binary: every test drives a real server over HTTP.

mod abuse;
mod cli;
mod client_assertion;
mod conformance;
mod deeplink;
mod device;
mod fake_bot_api;
mod fake_telegram_oidc;
mod flow;
mod gate;
mod hammer;
mod harness;
mod i18n;
mod job_lock;
mod layers;
mod logout;
mod miniapp;
mod multinode;
mod outage;
mod pitfalls;
mod policy;
mod registration;
mod revocation;
mod secrets_scan;
mod store;
mod upstream;

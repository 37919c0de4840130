//! Client administration: what `telegram-oidc client ...` does, as plain functions. The rules
//! a client must meet live in `oidc::clients`, shared with dynamic registration.

pub use crate::oidc::clients::*;

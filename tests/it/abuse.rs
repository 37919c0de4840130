//! Abuse cases: each asserts the exact error a forged, replayed or malformed input gets.

//! Time is passed into the protocol functions; handlers read it from one [`Clock`], so tests
//! move time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
    /// Unix milliseconds, for the few rules finer than a second (the device flow's polling).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

#[derive(Debug, Default)]
pub struct SystemClock;

/// The one reading of the system time (clippy.toml forbids it everywhere else).
#[allow(clippy::disallowed_methods)]
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The system time in Unix milliseconds.
#[allow(clippy::disallowed_methods)]
pub fn system_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        system_now()
    }

    fn now_millis(&self) -> i64 {
        system_now_millis()
    }
}

/// The system clock moved by an adjustable offset: a test advances it to expire codes.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset: AtomicI64,
}

impl ShiftedClock {
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> i64 {
        system_now() + self.offset.load(Ordering::SeqCst)
    }

    fn now_millis(&self) -> i64 {
        system_now_millis() + self.offset.load(Ordering::SeqCst) * 1000
    }
}

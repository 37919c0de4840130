//! The one path after `TelegramIdentity`: whichever adapter proved the user, the login passes
//! the same gate (replay rule, saving the user, the access policy) before a session, a code, a
//! grant or a device approval exists.

pub mod account;
pub mod audit;
pub mod authorize;
pub mod bot_account;
pub mod bot_chat;
pub mod bot_updates;
pub mod ciba;
pub mod device;
pub mod limits;
pub mod login;
pub mod policy;
pub mod session;
pub mod token_exchange;

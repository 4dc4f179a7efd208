//! Why: the `portcullis` subcommands other than `serve`, one file per noun (key, audit,
//! recording, rotation). They sit at the top with `server`: they open the vault through
//! `server::open_app` and call the same domain functions the API calls, so nothing below
//! imports them.

pub mod audit;
pub mod key;
pub mod recording;
pub mod rotation;

//! The meta protocol, pure: commands to bytes, bytes to replies.

pub(crate) mod request;
pub(crate) mod response;

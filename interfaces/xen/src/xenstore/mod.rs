//! The XenStore protocol, for the one component that talks to XenStore and
//! for the test store that plays xenstored in host tests.
//!
//! * [`path`]: path validation and a no-heap path builder.
//! * [`perms`]: permission strings.
//! * [`msg`]: every request and reply payload, encode and decode.
//! * [`decode`]: reassembly of messages from a byte stream that arrives in
//!   pieces and wraps anywhere.
//! * [`ring`]: the domain ring page as a device ([`moat_ring::Device`]).

pub mod decode;
pub mod msg;
pub mod path;
pub mod perms;
pub mod ring;

pub use decode::{Decoder, StreamError};
pub use msg::{Frame, MAX_MESSAGE, MsgError, Names, Request, Response, Token};
pub use path::{Path, PathBuf, PathError};
pub use perms::{Access, Perm, PermError, Perms};
pub use ring::{XsRing, XsRingError};

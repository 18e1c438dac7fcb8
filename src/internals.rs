//! Not an API: what the benchmarks, the fuzz targets, the integration tests and the binary
//! reach inside the server for, item by item. Hidden from the docs and outside semver; an
//! embedding application uses [`crate::Server`] and [`crate::Config`]. Everything else in the
//! crate is `pub(crate)`, so `dead_code` and `unreachable_pub` see what is really used.
#![doc(hidden)]
#![allow(missing_docs)]

pub mod auth {
    pub use crate::auth::Policy;
}

pub mod conn {
    pub use crate::conn::{Admission, AppEvent, CloseReason, Conn, ConnSettings, SendBatch};
}

pub mod conn_id {
    pub use crate::conn_id::ConnId;
}

pub mod distributor {
    pub use crate::distributor::{channels, conflate, ingress, snapshot, tick};
    pub use crate::distributor::{
        Batch, ChannelFrames, EventForms, Form, Ingress, JoinReply, JoinRequest, Joined,
        JoinedChannel, Publication, TickBatch, Twin,
    };
}

pub mod driver {
    pub use crate::driver::fd_limit;
    pub mod uring {
        pub use crate::driver::uring::probe;
    }
}

pub mod fanout {
    pub use crate::fanout::{deliver, Topics};
}

pub mod http {
    pub use crate::http::{handle, routes, HttpContext};
}

pub mod limits {
    pub use crate::limits::{MAX_HTTP_HEAD_BYTES, MAX_SNAPSHOT_KEYS, SENDS_PER_TURN};
}

pub mod protocol {
    pub use crate::protocol::{compress, frame, handshake, message};
}

pub mod shard {
    pub use crate::shard::{commands, joined};
    pub use crate::table::SendQueue;
    pub mod table {
        pub use crate::table::{ConnTable, Entry, Session, SubState};
    }
}

pub mod status {
    pub use crate::status::ServerState;
}

pub mod wire {
    pub use crate::wire::{binary_event, channel, command, event, reply, WallTime};
}

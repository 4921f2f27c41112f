//! Sessions: ids that nginx can route, and (with the session issue) parameter
//! capture, principal binding and the session store.

mod id;

pub use id::{
    MAX_SESSION_ID_LEN, SessionIdError, check_route_key, new_session_id, route_key_of,
    validate_session_id,
};

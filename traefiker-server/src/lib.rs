//! The `traefiker` service (being built; see the server issue).

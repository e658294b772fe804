//! What the server renders, from the core's values and the configuration only: answers to
//! people ([`reply`]: plain text, error pages with a reference), the narratives as
//! `/narrative_status/` describes them ([`status`]), and Traefik's dynamic configuration
//! ([`dynamic`]).
//!
//! Routes, the pages, and the loop that keeps renderings ([`crate::kept`]) depend on this
//! module; it depends on none of them, so the server's modules form no circle
//! (`tests/tidy.rs` checks the direction).

pub mod dynamic;
pub mod reply;
pub mod status;

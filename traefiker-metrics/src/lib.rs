//! Who is active (placeholder docs, rewritten below).

pub mod error;
mod http;
pub mod jupyter;
pub mod page;
pub mod parse;
pub mod traefik;

pub use error::MetricsError;
pub use jupyter::{NarrativeStatus, NarrativeStatusConfig};
pub use page::{read_page, CounterTracker, PageActivity, PageVersion, TraefikVersion};
pub use traefik::{fetch_page, TraefikMetrics, TraefikMetricsConfig};

//! `ActivitySource` over Traefik's Prometheus metrics (being built; see the metrics issue).

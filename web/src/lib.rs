//! The dashboard: static assets and the router that serves them at `/ui`.

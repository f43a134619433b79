//! Deployment planning (being written).

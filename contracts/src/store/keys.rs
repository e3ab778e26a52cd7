//! Managed API keys and their fleet-wide limits (issue #14).

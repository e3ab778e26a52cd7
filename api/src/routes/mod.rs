//! HTTP handlers, thin: extract, call plain functions, wrap the result.

pub mod admin;
pub mod chat;
pub mod openai;
pub mod ops;

//! Integration tests: one binary, shared harness (see `harness`).

mod cli;
mod corpus;
mod harness;
mod index;
mod llm;

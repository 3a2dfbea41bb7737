//! Integration tests: one binary, shared harness (see `harness`).

mod cases;
mod cli;
mod corpus;
mod harness;
mod index;
mod llm;

//! Integration tests: one binary, shared harness (see `harness`).

mod answer_key;
mod authz_matrix;
mod browser;
mod audit;
mod cases;
mod cli;
mod corpus;
mod dense;
mod drafts;
mod errors;
mod first_hour;
mod guard;
mod harness;
mod index;
mod intent;
mod llm;
mod pipeline;
mod probe17;
mod readme;
mod router;
mod safety;
mod server;
mod shapes;
mod trace;
mod registry;
mod users;

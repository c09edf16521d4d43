//! Nothing here: the loom model is `tests/loom_grace.rs`, which includes
//! `src/store/grace.rs` from the main package by path.

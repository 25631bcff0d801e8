//! Examples and cross-crate integration tests for the stackholm workspace.

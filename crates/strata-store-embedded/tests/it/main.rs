//! Integration tests of the embedded engine: the shared conformance suite, recovery,
//! corruption, crashes and the model-based property test.

mod basics;

//! Integration tests of the embedded engine: the shared conformance suite, recovery,
//! corruption, crashes and the model-based property test.

mod basics;
mod conformance;
mod corruption;
mod crash;
mod damaged_tail;
mod faults;
mod high_water;
mod lock;
mod model;
mod simulation;

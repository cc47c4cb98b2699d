//! Integration tests of the embedded engine: the shared conformance suite, recovery,
//! corruption, crashes, the model-based property tests of the engine and of its index.

mod basics;
mod conformance;
mod corruption;
mod crash;
mod damaged_tail;
mod faults;
mod high_water;
mod index;
mod lock;
mod model;
mod simulation;

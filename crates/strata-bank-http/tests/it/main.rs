//! The bank served by the `strata-bank` binary on a real socket, over a fresh data
//! directory.

mod serve;

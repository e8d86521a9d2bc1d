//! The behaviour every [`crate::Store`] backend must show, as a test suite a
//! backend runs against itself.

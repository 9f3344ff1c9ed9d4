//! FoundationDB backend (feature `fdb`): written next.

//! TLS serving (being written).

//! Cluster PKI (being written).

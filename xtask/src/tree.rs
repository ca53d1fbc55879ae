//! tree (being written)

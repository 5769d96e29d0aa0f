//! Image archive formats.

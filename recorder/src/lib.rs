//! The recording format: writer, reader, index, search, export.
//!
//! Why a crate of its own: the format must be readable without a running gateway (auditors,
//! `portcullis recording verify`, export tools) and must never learn about targets or HTTP.
//! The format itself is specified and built under the recordings issue; until then this
//! crate only reserves its place in the workspace (see ARCHITECTURE.md, "Status").

/// Version of the recording format this crate will write. Bumped with every breaking change
/// to `docs/recording-format.md`.
pub const FORMAT_VERSION: u32 = 0;

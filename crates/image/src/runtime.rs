//! Image config → OCI runtime spec conversion.
//!
//! OWNER: config helper.

/// What a caller overrides when turning an image config into a runtime spec.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOverrides {}

/// Converts an image config to a runtime spec (placeholder).
pub fn runtime_spec(_config: &crate::ImageConfig, _overrides: &RuntimeOverrides) -> oci_spec::runtime::Spec {
    oci_spec::runtime::Spec::default()
}

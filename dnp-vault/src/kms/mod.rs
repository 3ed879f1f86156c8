//! [`KmsProvider`](dnp_core::KmsProvider) implementations: one feature each.

#[cfg(feature = "local")]
pub(crate) mod local;
#[cfg(feature = "vault")]
pub(crate) mod vault;

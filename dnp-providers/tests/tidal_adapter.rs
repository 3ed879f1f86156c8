//! TIDAL tests (being written).

#[test]
fn tidal_capabilities_use_item_id_removal() {
    assert_eq!(dnp_providers::tidal::capabilities().playlist_removal, dnp_core::PlaylistRemoval::ByItemId);
}

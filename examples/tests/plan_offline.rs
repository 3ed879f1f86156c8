//! The `plan_offline` example's logic on the shipped sample files.

use std::io::Write as _;
use std::path::PathBuf;

use dnp_core::{ActionKind, InputError, MatchKind, SkipReason};
use dnp_examples::plan_offline::{LoadError, load, plan_inputs, run, sample_path};

fn samples() -> (PathBuf, PathBuf, PathBuf) {
    (sample_path("snapshot.json"), sample_path("dnp.json"), sample_path("policy.json"))
}

#[test]
fn the_shipped_samples_plan_the_blocked_artists_only() {
    let (snapshot, dnp, _) = samples();
    let inputs = load(&snapshot, &dnp, None).expect("the samples parse");
    assert_eq!(inputs.snapshot.item_count(), 33);
    assert_eq!(inputs.list.entries.len(), 3);
    let plan = plan_inputs(&inputs);
    assert_eq!(plan.summary.total_actions, 12);
    assert_eq!(plan.summary.actions.get(&ActionKind::UnlikeTrack), Some(&5));
    assert_eq!(plan.summary.actions.get(&ActionKind::RemovePlaylistItem), Some(&4));
    let blocked = ["Drake", "Kanye West", "Chris Brown"];
    assert!(plan.actions().all(|a| blocked.contains(&a.reason.artist_name.as_str())));
    // Chris Brown is listed by name only and credited without an id.
    assert!(plan.actions().any(|a| a.reason.matched == MatchKind::CreditName && a.reason.artist_name == "Chris Brown"));
    assert!(plan.actions().any(|a| a.reason.matched == MatchKind::TitleFeature));
    assert_eq!(plan.skipped.len(), 2);
    assert!(plan.skipped.iter().all(|s| s.reason == SkipReason::PlaylistNotEditable));
}

#[test]
fn the_sample_policy_is_applied() {
    let (snapshot, dnp, policy) = samples();
    let plan = plan_inputs(&load(&snapshot, &dnp, Some(&policy)).expect("the samples parse"));
    // Saved albums are off for spotify, and "Take Care" is allow-listed by ISRC.
    assert_eq!(plan.summary.actions.get(&ActionKind::RemoveAlbum), None);
    assert!(
        plan.skipped.iter().any(|s| s.reason == SkipReason::AllowListed && s.action.label.starts_with("Take Care"))
    );
    assert_eq!(plan.summary.total_actions, 10);
}

#[test]
fn the_table_shows_kind_item_reason_confidence_summary_and_skips() {
    let text = run(&[]).expect("the samples parse");
    let header = text.lines().find(|l| l.starts_with('#')).expect("a header");
    for column in ["kind", "item", "reason", "confidence"] {
        assert!(header.contains(column), "{header}");
    }
    let row = text.lines().find(|l| l.contains("One Dance — Drake, Future")).expect("a row for One Dance");
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["1", "unlike_track", "One Dance — Drake, Future", "primary artist: Drake", "1.00"]);
    assert!(text.contains("named in the title: Drake"));
    assert!(text.contains("Summary: 12 actions in 4 API calls"));
    assert!(text.contains("Skipped (2):"));
    assert!(text.contains("playlist not editable"));
    assert!(text.contains("https://open.spotify.com/playlist/37i9dQZF1DX0XUsuxWHRQd"));
}

#[test]
fn a_malformed_file_gives_the_field_line_and_column() {
    let mut file = tempfile();
    let text = std::fs::read_to_string(sample_path("snapshot.json")).expect("sample").replacen(
        "\"role\": \"featured\"",
        "\"role\": \"guest\"",
        1,
    );
    file.1.write_all(text.as_bytes()).expect("write");
    let (_, dnp, _) = samples();
    let err = load(&file.0, &dnp, None).expect_err("bad role");
    let LoadError::Input { error: InputError::Json { path, line, column, .. }, .. } = &err else {
        panic!("not a JSON error: {err}");
    };
    assert_eq!(path, "liked_tracks[0].track.artists[1].role");
    let expected_line = text.lines().position(|l| l.contains("\"guest\"")).expect("edited") + 1;
    assert_eq!(*line, expected_line);
    assert!(*column > 1);
    assert!(err.to_string().contains("snapshot"), "{err}");
    let _ = std::fs::remove_file(&file.0);

    let missing = load(&sample_path("no-such-file.json"), &dnp, None).expect_err("missing");
    assert!(matches!(missing, LoadError::Io { .. }));
}

/// A uniquely named file in the temp directory.
fn tempfile() -> (PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("dnp-plan-offline-{}-{}.json", std::process::id(), line!()));
    let file = std::fs::File::create(&path).expect("temp file");
    (path, file)
}

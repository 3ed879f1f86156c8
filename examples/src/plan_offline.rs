//! The logic of the `plan_offline` example: read a library snapshot, a DNP list and an
//! optional policy from JSON files, plan, and render the plan as a table for people.
//!
//! Kept in the library so that it is tested (`tests/plan_offline.rs`); the example's
//! `main` only handles arguments and the exit code.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use dnp_core::{
    ActionKind, Alternative, BlockedSet, Capabilities, DnpList, EnforcementPolicy, InputError, LibrarySnapshot,
    MatchKind, PageSizes, Plan, PlaylistRemoval, ProviderId, SkipReason, json, plan,
};

/// The sample files shipped in `examples/data/`.
pub fn sample_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// Why the inputs could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid document: the typed error names the field, line and column.
    Input {
        /// The file.
        path: PathBuf,
        /// The error.
        error: InputError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Input { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Input { error, .. } => Some(error),
        }
    }
}

/// The three inputs of a plan.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The library.
    pub snapshot: LibrarySnapshot,
    /// The DNP list.
    pub list: DnpList,
    /// The policy (the default when no file was given).
    pub policy: EnforcementPolicy,
}

fn input(path: &Path) -> impl FnOnce(InputError) -> LoadError + '_ {
    move |error| LoadError::Input { path: path.to_owned(), error }
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })
}

/// Reads the inputs from JSON files.
///
/// # Errors
/// [`LoadError::Io`] for a file that cannot be read, [`LoadError::Input`] (with the field
/// path, line and column) for one that does not parse.
pub fn load(snapshot: &Path, dnp: &Path, policy: Option<&Path>) -> Result<Inputs, LoadError> {
    Ok(Inputs {
        snapshot: json::snapshot_from_json(&read(snapshot)?).map_err(input(snapshot))?,
        list: json::dnp_list_from_json(&read(dnp)?).map_err(input(dnp))?,
        policy: match policy {
            Some(path) => json::policy_from_json(&read(path)?).map_err(input(path))?,
            None => EnforcementPolicy::default(),
        },
    })
}

/// What a provider's API can do, as far as an offline plan needs to know: Apple Music
/// rates songs "dislike" instead of removing them and cannot edit playlists; YouTube Music
/// removes playlist entries by their own id; everything else is planned like Spotify
/// (batches of 50, 100 playlist items a call, every occurrence of a track at once).
pub fn offline_capabilities(provider: &ProviderId) -> Capabilities {
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 100 };
    let mut b = Capabilities::builder(pages);
    for kind in ActionKind::ALL {
        let max =
            if matches!(kind, ActionKind::RemovePlaylistItem | ActionKind::InsertPlaylistItem) { 100 } else { 50 };
        b = b.supported(kind, max);
    }
    match provider.as_str() {
        ProviderId::APPLE_MUSIC => b
            .unsupported(
                ActionKind::UnlikeTrack,
                "the API does not document removing library songs",
                Some(Alternative::Dislike),
            )
            .unsupported(
                ActionKind::RemoveAlbum,
                "the API does not document removing library albums",
                Some(Alternative::ManualChecklist),
            )
            .unsupported(
                ActionKind::RemovePlaylistItem,
                "the API cannot remove playlist items",
                Some(Alternative::ManualChecklist),
            )
            .unsupported(ActionKind::UnfollowArtist, "the API has no followed artists", None)
            .build(),
        ProviderId::YOUTUBE_MUSIC | ProviderId::TIDAL => b.playlist_removal(PlaylistRemoval::ByItemId).build(),
        _ => b.build(),
    }
}

/// Plans `inputs` with [`offline_capabilities`].
pub fn plan_inputs(inputs: &Inputs) -> Plan {
    let provider = &inputs.snapshot.provider;
    let blocked = BlockedSet::for_provider(&inputs.list, provider);
    plan(&inputs.snapshot, &blocked, &inputs.policy, &offline_capabilities(provider))
}

fn match_words(kind: MatchKind) -> &'static str {
    match kind {
        MatchKind::PrimaryCredit => "primary artist",
        MatchKind::FeaturedCredit => "featured artist",
        MatchKind::AlbumArtist => "album artist",
        MatchKind::CreditName => "credited by name",
        MatchKind::TitleFeature => "named in the title",
        MatchKind::NameOnly => "same name",
        MatchKind::FollowedArtist => "followed artist",
    }
}

fn skip_words(reason: &SkipReason) -> String {
    match reason {
        SkipReason::PlaylistNotEditable => "playlist not editable".into(),
        SkipReason::OwnPlaylistExcluded => "own playlists excluded by the policy".into(),
        SkipReason::CollaborativePlaylistExcluded => "collaborative playlists excluded by the policy".into(),
        SkipReason::AllowListed => "allow-listed".into(),
        SkipReason::LowConfidence => "confidence below the policy's minimum".into(),
        SkipReason::AlreadyDisliked => "already rated dislike".into(),
        SkipReason::Unsupported { reason, alternative } => match alternative {
            Some(Alternative::Dislike) => format!("unsupported ({reason}); rate it dislike instead"),
            Some(Alternative::ManualChecklist) => format!("unsupported ({reason}); remove it by hand"),
            Some(Alternative::CleanedPlaylistCopy) => format!("unsupported ({reason}); publish a cleaned copy"),
            None => format!("unsupported ({reason})"),
        },
    }
}

/// Shortens `s` to `max` characters, marking the cut with "…".
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Renders a table of rows (the first is the header), columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

/// The plan as text: a table of actions (kind, item, reason, confidence), the summary,
/// and the skipped items with why and where to find them.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan for {} ({} items scanned)\n", plan.provider, plan.summary.items_scanned);
    if plan.is_empty() {
        out.push_str("Nothing to do.\n");
    } else {
        let mut rows = vec![["#", "kind", "item", "reason", "confidence"].map(String::from).to_vec()];
        for (n, batch) in plan.batches.iter().enumerate() {
            for action in &batch.actions {
                rows.push(vec![
                    format!("{}", n + 1),
                    action.kind.as_str().to_owned(),
                    fit(&action.label, 60),
                    format!("{}: {}", match_words(action.reason.matched), action.reason.artist_name),
                    format!("{:.2}", action.reason.confidence),
                ]);
            }
        }
        out.push_str(&table(&rows));
        out.push_str("(# is the API call that carries the action)\n");
    }

    let s = &plan.summary;
    let by_kind: Vec<String> = s.actions.iter().map(|(k, n)| format!("{n} {}", k.as_str())).collect();
    let _ = writeln!(
        out,
        "\nSummary: {} action{} in {} API call{}{}{}",
        s.total_actions,
        if s.total_actions == 1 { "" } else { "s" },
        s.api_calls,
        if s.api_calls == 1 { "" } else { "s" },
        if by_kind.is_empty() { String::new() } else { format!(" ({})", by_kind.join(", ")) },
        if s.quota_units > 0 {
            format!(", {} quota units over {} day(s)", s.quota_units, s.days)
        } else {
            String::new()
        },
    );

    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped ({}):", plan.skipped.len());
        let mut rows = vec![["item", "why", "artist", "link"].map(String::from).to_vec()];
        for skipped in &plan.skipped {
            rows.push(vec![
                fit(&skipped.action.label, 60),
                skip_words(&skipped.reason),
                skipped.action.reason.artist_name.clone(),
                skipped.url.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// The example's whole job on `args` (`[snapshot.json dnp.json [policy.json]]`, the
/// shipped samples when absent): the text to print.
///
/// # Errors
/// See [`load`].
pub fn run(args: &[String]) -> Result<String, LoadError> {
    let snapshot = args.first().map_or_else(|| sample_path("snapshot.json"), PathBuf::from);
    let dnp = args.get(1).map_or_else(|| sample_path("dnp.json"), PathBuf::from);
    let policy = args.get(2).map(PathBuf::from);
    let inputs = load(&snapshot, &dnp, policy.as_deref())?;
    Ok(render(&plan_inputs(&inputs)))
}

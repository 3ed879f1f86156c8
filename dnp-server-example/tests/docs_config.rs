//! docs/operations.md documents exactly the environment variables the server reads.
//!
//! The variables read are found in the source: every string literal of the shape
//! `UPPER_SNAKE` (with at least one underscore) passed as a name to one of the lookup
//! functions of the configuration code — `get("X")`, `lookup("X")`, `vars.optional("X")`,
//! `vars.required("X")`, `parse_num::<T>(&get, "X", …)`, `required(get, "X", …)`,
//! `number(&lookup, "X", …)`, `with_redirect("X", …)`, `std::env::var("X")` — in the server,
//! dnp-vault, dnp-queue and dnp-providers, outside comments and test modules; plus
//! `RUST_LOG` wherever `EnvFilter::…from_default_env` reads it. The variables documented
//! are the names in backticks in the first column of every table of docs/operations.md
//! whose header's first cell is `variable`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What, written just before a name's string literal (whitespace removed), makes the
/// literal the name of a variable being read.
const READ_BEFORE: &[&str] = &[
    "get(",
    "lookup(",
    ".optional(",
    ".required(",
    "(get,",
    "(&get,",
    "(lookup,",
    "(&lookup,",
    "with_redirect(",
    "env::var(",
    "env::var_os(",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The code of a source file without comment lines and without its `#[cfg(test)] mod …`
/// (which, in this workspace, ends the file).
fn code_of(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut code = String::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines.get(i + 1).is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if !trimmed.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

fn is_variable_name(s: &str) -> bool {
    s.len() >= 4
        && s.contains('_')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Variable names read in `code`. Every stretch between two consecutive `"` is tried as a
/// literal, so an escaped quote or a `'"'` cannot put the scan out of step; a stretch that
/// is code rather than a literal is never a lone `UPPER_SNAKE` word.
fn names_read(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let quotes: Vec<usize> = code.match_indices('"').map(|(i, _)| i).collect();
    for pair in quotes.windows(2) {
        let literal = &code[pair[0] + 1..pair[1]];
        if !is_variable_name(literal) {
            continue;
        }
        let before: String = code[..pair[0]].chars().rev().filter(|c| !c.is_whitespace()).take(20).collect();
        let before: String = before.chars().rev().collect();
        if READ_BEFORE.iter().any(|r| before.ends_with(r)) {
            names.insert(literal.to_owned());
        }
    }
    if code.contains("EnvFilter::try_from_default_env") || code.contains("EnvFilter::from_default_env") {
        names.insert("RUST_LOG".to_owned());
    }
    names
}

/// Variable → the source files (relative to the workspace) that read it, over the
/// crates the server is built from.
fn variables_in_code() -> BTreeMap<String, BTreeSet<String>> {
    let root = workspace();
    let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dir in ["dnp-server-example/src", "dnp-vault/src", "dnp-queue/src", "dnp-providers/src"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        let mut in_dir = 0;
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let rel = file.strip_prefix(&root).unwrap().display().to_string();
            for name in names_read(&code_of(&source)) {
                in_dir += 1;
                read.entry(name).or_default().insert(rel.clone());
            }
        }
        assert!(in_dir > 0, "found no variable read under {dir}: has the way variables are read changed?");
    }
    read
}

/// Variable → the line of docs/operations.md that documents it.
fn variables_in_docs() -> BTreeMap<String, usize> {
    let path = workspace().join("docs/operations.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut documented = BTreeMap::new();
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let first = line.trim_start_matches('|').split('|').next().unwrap_or("").trim();
        if !in_table {
            // A header row: the table is one of variables when its first column says so.
            in_table = first.eq_ignore_ascii_case("variable") || first.eq_ignore_ascii_case("variables");
            continue;
        }
        if first.starts_with("---") || first.starts_with(":--") {
            continue;
        }
        for (j, part) in first.split('`').enumerate() {
            if j % 2 == 1 && is_variable_name(part) {
                documented.insert(part.to_owned(), i + 1);
            }
        }
    }
    documented
}

#[test]
fn operations_md_documents_exactly_the_variables_the_code_reads() {
    let read = variables_in_code();
    let documented = variables_in_docs();
    // Guards against a pattern that silently stopped matching: these are read in four crates.
    for known in ["DATABASE_URL", "SESSION_SECRET", "KMS_PROVIDER", "JOB_LEASE_SECONDS", "SPOTIFY_CLIENT_ID"] {
        assert!(read.contains_key(known), "the scan of the source no longer finds {known}");
    }
    assert!(documented.len() > 20, "found only {} variables in docs/operations.md's tables", documented.len());

    let missing: Vec<String> = read
        .iter()
        .filter(|(name, _)| !documented.contains_key(*name))
        .map(|(name, files)| format!("{name} (read in {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    let extra: Vec<String> = documented
        .iter()
        .filter(|(name, _)| !read.contains_key(*name))
        .map(|(name, line)| format!("{name} (docs/operations.md:{line})"))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/operations.md and the code disagree.\n\
         Read by the code but not in a `variable` table of docs/operations.md:\n  {}\n\
         In docs/operations.md but read nowhere:\n  {}",
        if missing.is_empty() { "(none)".to_owned() } else { missing.join("\n  ") },
        if extra.is_empty() { "(none)".to_owned() } else { extra.join("\n  ") },
    );
}

#[test]
fn the_scan_finds_names_only_where_they_are_read() {
    let code = r#"
        let a = get("ONE_VAR").unwrap_or_default();
        let b = parse_num::<u64>(
            &get,
            "TWO_VAR",
            1,
        )?;
        let c = vars.optional("THREE_VAR");
        let not = ConfigError::new("FOUR_VAR", "is wrong");
        let also_not = env!("CARGO_PKG_VERSION");
        let f = EnvFilter::try_from_default_env();
    "#;
    let names: Vec<String> = names_read(code).into_iter().collect();
    assert_eq!(names, ["ONE_VAR", "RUST_LOG", "THREE_VAR", "TWO_VAR"]);
    let without_tests =
        code_of("let x = get(\"AA_B\");\n// get(\"CC_D\")\n#[cfg(test)]\nmod tests {\n get(\"EE_F\");\n}\n");
    assert_eq!(names_read(&without_tests).into_iter().collect::<Vec<_>>(), ["AA_B"]);
}

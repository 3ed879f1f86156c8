//! No `KEYS` anywhere in the codebase: it blocks Redis for as long as it walks the whole
//! keyspace. Iterate with `SCAN` instead. This test reads every source file of the
//! repository and fails on anything that would issue the command.

use std::path::{Path, PathBuf};

/// The ways to issue the command: as a quoted command name (`cmd("…")`, `redis.call('…')`,
/// `"… pattern"`), through redis-rs' `keys` method, or from `redis-cli`. The command word is
/// assembled at run time so that this file does not match itself.
fn offending(line: &str, uses_redis_commands: bool) -> bool {
    let word = ["KE", "YS"].concat();
    let lower = word.to_lowercase();
    let quoted = ['"', '\''].iter().any(|q| {
        line.contains(&format!("{q}{word}{q}"))
            || line.contains(&format!("{q}{word} "))
            || line.contains(&format!("cmd({q}{lower}{q})"))
            || line.to_lowercase().contains(&format!("redis.call({q}{lower}{q}"))
            || line.to_lowercase().contains(&format!("redis.pcall({q}{lower}{q}"))
    });
    let cli = line.contains("redis-cli") && line.split_whitespace().any(|w| w.eq_ignore_ascii_case(&word));
    let method =
        uses_redis_commands && (line.contains(&format!(".{lower}(")) || line.contains(&format!(".{lower}::<")));
    quoted || cli || method
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dnp-queue sits in the workspace root").to_path_buf()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name.starts_with('.') || name.starts_with("target") || name == "node_modules" {
                continue;
            }
            walk(&path, out);
        } else {
            let source = ["rs", "lua", "sh", "toml", "md", "sql", "py", "js", "ts", "yml", "yaml", "html"]
                .iter()
                .any(|ext| name.ends_with(&format!(".{ext}")));
            let script = path.parent().is_some_and(|p| p.ends_with("scripts")) && !name.contains('.');
            if (source || script) && name != "Cargo.lock" {
                out.push(path);
            }
        }
    }
}

#[test]
fn the_matcher_catches_each_form() {
    let word = ["KE", "YS"].concat();
    let lower = word.to_lowercase();
    assert!(offending(&format!("redis::cmd(\"{word}\").arg(\"dnp:*\")"), false));
    assert!(offending(&format!("redis.call('{word}', p .. '*')"), false));
    assert!(offending(&format!("redis::cmd(\"{lower}\")"), false));
    assert!(offending(&format!("redis-cli {lower} 'dnp:*'"), false));
    assert!(offending(&format!("let k: Vec<String> = con.{lower}(\"dnp:*\").await?;"), true));
    assert!(!offending("let ids = map.keys().collect();", false), "HashMap::keys outside Redis code is fine");
    assert!(!offending("redis::cmd(\"SCAN\").arg(cursor)", true));
    assert!(!offending("JWKS documents have a \"keys\" array", false));
}

#[test]
fn no_keys_command_anywhere_in_the_repository() {
    let root = repo_root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), root.display());
    assert!(files.iter().any(|f| f.ends_with("dnp-queue/src/redis_queue.rs")), "the Redis backend was searched");
    let this_file = Path::new(file!()).file_name().unwrap_or_default().to_owned();
    let mut found = Vec::new();
    for file in &files {
        if file.file_name() == Some(this_file.as_os_str()) && file.parent().is_some_and(|p| p.ends_with("suite")) {
            continue; // this test's own patterns
        }
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let uses_redis_commands = text.contains("redis::") && text.contains("Commands");
        for (n, line) in text.lines().enumerate() {
            if offending(line, uses_redis_commands) {
                found.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(found.is_empty(), "the KEYS command must not be used (walk with SCAN instead):\n{}", found.join("\n"));
}

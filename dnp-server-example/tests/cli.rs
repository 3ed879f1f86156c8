//! The binary: a configuration error names the variable and exits non-zero.

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnp-server"));
    cmd.args(args).env_clear().env("DATA_DIR", dir.path()).env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn serve_without_a_session_secret_names_it_and_exits_2() {
    let (code, stderr) = run(&["serve"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SESSION_SECRET") && stderr.contains("required"), "{stderr}");
}

#[test]
fn a_short_secret_and_a_bad_url_are_named() {
    let (code, stderr) = run(&["serve"], &[("SESSION_SECRET", "too-short")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("SESSION_SECRET") && stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the secret is not echoed: {stderr}");
    let secret = "s".repeat(40);
    let (code, stderr) = run(&["migrate"], &[("SESSION_SECRET", &secret), ("DATABASE_URL", "mysql://x")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    let (code, stderr) = run(&["worker"], &[("KMS_PROVIDER", "vault")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("VAULT_ADDR"), "{stderr}");
    let (code, stderr) = run(
        &["serve"],
        &[("SESSION_SECRET", &secret), ("SPOTIFY_CLIENT_ID", "abc"), ("SPOTIFY_API_BASE_URL", "ftp://x")],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("SPOTIFY_API_BASE_URL"), "{stderr}");
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dnp-server"))
        .arg("migrate")
        .env_clear()
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("dnp.db").exists());
    assert!(dir.path().join("dnp-kms.key").exists(), "the local KMS key is created in DATA_DIR");
}

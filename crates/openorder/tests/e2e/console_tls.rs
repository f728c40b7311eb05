//! The console over HTTPS: given a certificate and its key (`--console-tls-cert`,
//! `--console-tls-key`) it serves HTTPS only and its session cookie is `Secure`; one without
//! the other is refused at start, by `openorder console` and by `openorder up` before it
//! starts anything. Certificates are made at test time by `scripts/tls.sh` (openssl).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    console: console::ConsoleArgs,
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("openorder-test-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory with `scripts/tls.sh`'s certificates: `ca.pem`, and `server.pem` /
/// `server.key` for 127.0.0.1 signed by it. `None` (the test skipped) only when they cannot
/// be made and OPENORDER_TEST_SKIP_EXTERNAL=1.
fn certificates() -> Option<PathBuf> {
    let dir = temp_dir("console-tls");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tls.sh");
    match Command::new("bash").arg(&script).arg(&dir).status() {
        Ok(status) if status.success() => Some(dir),
        _ if std::env::var("OPENORDER_TEST_SKIP_EXTERNAL").as_deref() == Ok("1") => None,
        outcome => panic!(
            "{} made no certificates ({outcome:?}): it needs openssl (or set \
             OPENORDER_TEST_SKIP_EXTERNAL=1 to skip this test)",
            script.display()
        ),
    }
}

/// The value of the form field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    let start = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&start)
        .unwrap_or_else(|| panic!("no field {name}: {html}"));
    let rest = &html[at + start.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The attributes of a `Set-Cookie` value, lower-cased, without its name and value.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// The `Set-Cookie` of `response`; `what` names it, should it be missing.
fn set_cookie(response: &reqwest::Response, what: &str) -> String {
    response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect(what)
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_certificate_and_key_the_console_serves_https_only_and_its_session_cookie_is_secure(
) {
    let Some(tls) = certificates() else {
        return;
    };
    let token = platform::auth::operators::new_token();
    let line = platform::auth::operators::Entry::for_token("alice", &token).line();
    let (cert, key) = (tls.join("server.pem"), tls.join("server.key"));
    let cli = Cli::try_parse_from([
        "console",
        "--operator-token-hash",
        line.as_str(),
        "--console-tls-cert",
        cert.to_str().unwrap(),
        "--console-tls-key",
        key.to_str().unwrap(),
    ])
    .unwrap();
    let console = console::Console::new(&cli.console).await.unwrap();
    assert_eq!(console.scheme(), "https");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = platform::CancellationToken::new();
    let served = tokio::spawn(console::serve(console, listener, shutdown.clone()));

    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://{address}");
    let page = https.get(format!("{base}/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let cookie = set_cookie(&page, "a new session's cookie");
    let found = attributes(&cookie);
    for wanted in ["secure", "httponly", "samesite=strict"] {
        assert!(found.iter().any(|a| a == wanted), "{wanted}: {cookie}");
    }
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(tls.to_str().unwrap()),
        "the page names no file: {html}"
    );

    // Signing in over HTTPS: the signed-in session's cookie is `Secure` too.
    let session = cookie.split(';').next().unwrap().to_string();
    let form = format!(
        "csrf={}&token={}&next=%2F",
        console::pages::encode(&field(&html, "csrf")),
        console::pages::encode(&token)
    );
    let signed = https
        .post(format!("{base}/sign-in"))
        .header(reqwest::header::COOKIE, session)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), reqwest::StatusCode::SEE_OTHER);
    let signed_cookie = set_cookie(&signed, "the signed-in session's cookie");
    assert!(
        attributes(&signed_cookie).iter().any(|a| a == "secure"),
        "{signed_cookie}"
    );

    // HTTPS only: plain HTTP on the port gets no answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{address}/sign-in"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the console stops")
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&tls);
}

/// Runs `openorder` with `args` (and no console TLS settings from the environment); its
/// exit status and standard error. It must end within 60 s.
fn openorder(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openorder"))
        .args(args)
        .env_remove("OPENORDER_CONSOLE_TLS_CERT")
        .env_remove("OPENORDER_CONSOLE_TLS_KEY")
        .env_remove("OPENORDER_BOOTSTRAP_SERVERS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openorder starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openorder {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_console_certificate_without_its_key_or_a_key_without_its_certificate_is_refused_at_start() {
    let dir = temp_dir("console-tls-half");
    let pem = dir.join("console.pem");
    std::fs::write(&pem, "never read\n").unwrap();
    let pem = pem.to_str().unwrap();
    let data = dir.join("up");
    let data = data.to_str().unwrap();
    for (args, missing) in [
        (
            vec![
                "console",
                "--listen",
                "127.0.0.1:0",
                "--console-tls-cert",
                pem,
            ],
            "--console-tls-key",
        ),
        (
            vec![
                "console",
                "--listen",
                "127.0.0.1:0",
                "--console-tls-key",
                pem,
            ],
            "--console-tls-cert",
        ),
        (
            vec!["up", "--data-dir", data, "--console-tls-cert", pem],
            "--console-tls-key",
        ),
    ] {
        let (status, stderr) = openorder(&args);
        assert!(!status.success(), "{args:?} started");
        assert!(
            stderr.contains(missing) && stderr.contains("give both"),
            "{args:?}: {stderr}"
        );
    }
    // `up` refused before it started anything: no broker ever ran in its data directory.
    assert!(
        !dir.join("up").join("broker.log").exists(),
        "up started its broker"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! A real headless Chromium driven over WebDriver (W3C): `chromedriver` from Debian's
//! `chromium-driver`, started on a free loopback port for one test. Only what the browser
//! tests use: open a page, find elements (waiting, or reloading until one is drawn), type,
//! click, read text and the page's source, take a screenshot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The key W3C WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// The chromedriver next to the Chromium the test script found, if there is one.
pub fn chromedriver() -> Option<PathBuf> {
    let from_env = std::env::var_os("OPENORDER_TEST_CHROMEDRIVER").map(PathBuf::from);
    from_env
        .into_iter()
        .chain([
            PathBuf::from("/usr/bin/chromedriver"),
            PathBuf::from("/usr/lib/chromium/chromedriver"),
        ])
        .find(|p| p.exists())
}

impl Browser {
    /// A new headless Chromium (`binary`), or None when no chromedriver is installed.
    pub async fn start(binary: &str) -> Option<Self> {
        let driver_exe = chromedriver()?;
        let port = super::free_port();
        let driver = Command::new(driver_exe)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = super::temp_dir("chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Some(Self {
            driver,
            base,
            session,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = super::json_of(request).await;
        if answer["value"].get("error").is_some() {
            panic!("{path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits (up to 30 s) until the page's URL satisfies `done` (a form's answer arrived);
    /// returns it.
    pub async fn wait_url(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still at {url} after 30 s: {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The first element `css` selects now, if there is one.
    async fn find_now(&self, css: &str) -> Result<String, Value> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let request = self
            .http
            .post(&url)
            .json(&json!({"using": "css selector", "value": css}));
        let answer: Value = super::json_of(request).await;
        match answer["value"][ELEMENT].as_str() {
            Some(id) => Ok(id.to_string()),
            None => Err(answer["value"].clone()),
        }
    }

    /// The first element `css` selects, waiting for it up to 30 s.
    pub async fn find(&self, css: &str) -> String {
        self.look(css, Duration::from_secs(30), false).await
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the value of the field `css` selects with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (up to 60 s) until there is an element `css` whose text satisfies `done`,
    /// reloading the page between looks when `reload`; returns the text.
    pub async fn wait_text(&self, css: &str, reload: bool, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut text = String::new();
            if let Ok(id) = self.find_now(css).await {
                text = self
                    .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if done(&text) {
                    return text;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} never became what was waited for: {text:?} in {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            if reload {
                self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
                    .await;
            }
        }
    }

    /// Waits (up to 60 s) until the page holds an element `css` selects, reloading it
    /// between looks (for what the server draws only as the page is asked for); returns it.
    pub async fn wait_element(&self, css: &str) -> String {
        self.look(css, Duration::from_secs(60), true).await
    }

    /// The first element `css` selects, looking again for up to `within` (every 200 ms, or
    /// every 500 ms with the page reloaded between looks when `reload`).
    async fn look(&self, css: &str, within: Duration, reload: bool) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let every = Duration::from_millis(if reload { 500 } else { 200 });
        loop {
            let why = match self.find_now(css).await {
                Ok(id) => return id,
                Err(why) => why,
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css} in {within:?}{} ({}): {}",
                if reload { " of reloads" } else { "" },
                why["message"],
                self.source().await
            );
            tokio::time::sleep(every).await;
            if reload {
                self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
                    .await;
            }
        }
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Browser {
    /// Ends the session (Chromium exits), then the driver.
    pub async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// A test that failed drops its browser without [`Browser::quit`]: the session is ended
/// here (a plain blocking HTTP request), or Chromium would outlive its killed driver.
impl Drop for Browser {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://").to_string();
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.read(&mut [0u8; 512]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! The three services as the console reaches them: over their HTTP APIs, with the signed-in
//! operator's token, so every action goes through the service's own checks (authentication,
//! validation, the same dead-letter code as `openorder dlt`).
//!
//! What the pages read comes through typed methods ([`Services::stock`],
//! [`Services::order_counts`], …) or [`Reply::read`], which decode an answer into the type
//! the service itself serializes (`contracts::api`, `platform::dead_letters`,
//! `platform::status`): a field renamed on one side does not compile on the other. A refusal
//! is an error in one line, `<service>: <title>: <detail>`. [`Services::call`] answers the
//! JSON as it came, for what has no shared type yet and for problem bodies.

use std::time::Duration;

use contracts::api::{Notification, OrderCounts, OrderView, Page, StockItem, StuckPage};
use platform::dead_letters::read::Summary;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the services are.
#[derive(Clone, Debug)]
pub struct Services {
    pub order: String,
    pub inventory: String,
    pub notification: String,
    http: reqwest::Client,
}

/// A service's answer: its status and body (a problem's `title`/`detail` on failure).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What went wrong, in one line, from a problem body or the status.
    pub fn why(&self) -> String {
        let text = |k: &str| self.body.get(k).and_then(Value::as_str).map(str::to_string);
        match (text("title"), text("detail")) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) => t,
            (None, Some(d)) => d,
            (None, None) => format!("HTTP {}", self.status),
        }
    }

    /// The answer as the `T` `service` serializes: an error `<service>: <why>` when it
    /// refused (not 2xx, [`Reply::why`]), or saying what did not fit when the body is not a
    /// `T` (a service of another version, say).
    pub fn read<T: DeserializeOwned>(self, service: &str) -> anyhow::Result<T> {
        if !self.ok() {
            anyhow::bail!("{}: {}", service, self.why());
        }
        serde_json::from_value(self.body).map_err(|e| {
            anyhow::anyhow!(
                "{} answered what the console cannot read as {}: {}",
                service,
                std::any::type_name::<T>(),
                e
            )
        })
    }

    /// As [`Reply::read`], with a 404 (the service does not know it) as `None`.
    pub fn read_found<T: DeserializeOwned>(self, service: &str) -> anyhow::Result<Option<T>> {
        if self.status == 404 {
            return Ok(None);
        }
        self.read(service).map(Some)
    }
}

/// Most bytes of a service's answer the console reads.
const MAX_REPLY: usize = 4 * 1024 * 1024;
/// Most bytes of a service's `/metrics` the console reads ([`Services::metrics`]).
pub const MAX_METRICS: usize = 1024 * 1024;

impl Services {
    pub fn new(order: &str, inventory: &str, notification: &str) -> anyhow::Result<Self> {
        let trim = |u: &str| u.trim_end_matches('/').to_string();
        Ok(Self {
            order: trim(order),
            inventory: trim(inventory),
            notification: trim(notification),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .connect_timeout(Duration::from_secs(3))
                .build()?,
        })
    }

    /// Each service's name and base URL.
    pub fn all(&self) -> [(&'static str, &str); 3] {
        [
            ("order-service", &self.order),
            ("inventory-service", &self.inventory),
            ("notification-service", &self.notification),
        ]
    }

    /// `method` `base``path` with `body` as JSON, as the operator holding `token`.
    pub async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let url = format!("{base}{path}");
        let mut request = self.http.request(method, &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url} unreachable: {e}"))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        {
            anyhow::ensure!(
                bytes.len() + chunk.len() <= MAX_REPLY,
                "{url} answered more than {MAX_REPLY} bytes"
            );
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    /// `POST /api/orders` with `order`, as a customer would (no operator token), with an
    /// `Idempotency-Key` when given.
    pub async fn place_order(&self, order: &Value, key: Option<&str>) -> anyhow::Result<Reply> {
        let url = format!("{}/api/orders", self.order);
        let mut request = self.http.post(&url).json(order);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url} unreachable: {e}"))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    pub async fn get(&self, base: &str, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        self.call(Method::GET, base, path, None, token).await
    }

    /// Whether the service at `base` says it is ready.
    pub async fn ready(&self, base: &str) -> bool {
        matches!(self.get(base, "/health/ready", None).await, Ok(r) if r.ok())
    }

    /// `GET /metrics` of the service at `base`, as text: answered within `bound`, and at
    /// most [`MAX_METRICS`] bytes of it read (past them the rest is left, and the line cut
    /// there dropped). It needs no token unless the service was started with
    /// `--protect-metrics`: then it answers 401 or 403, an error here.
    pub async fn metrics(&self, base: &str, bound: Duration) -> anyhow::Result<String> {
        let url = format!("{base}/metrics");
        let read = async {
            let mut response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{url} unreachable: {e}"))?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}");
            let (mut bytes, mut cut) = (Vec::new(), false);
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
            {
                let room = MAX_METRICS.saturating_sub(bytes.len());
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    cut = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, anyhow::Error>((bytes, cut))
        };
        let (bytes, cut) = tokio::time::timeout(bound, read)
            .await
            .map_err(|_| anyhow::anyhow!("{url} did not answer within {bound:?}"))??;
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if cut {
            text.truncate(text.rfind('\n').map_or(0, |at| at + 1));
        }
        Ok(text)
    }

    /// `GET` `base``path` as the operator holding `token`, read as `T` ([`Reply::read`]).
    async fn read<T: DeserializeOwned>(
        &self,
        service: &str,
        base: &str,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<T> {
        self.get(base, path, token).await?.read(service)
    }

    /// inventory-service's `GET /api/inventory`: every SKU's stock.
    pub async fn stock(&self, token: Option<&str>) -> anyhow::Result<Vec<StockItem>> {
        self.read(
            "inventory-service",
            &self.inventory,
            "/api/inventory",
            token,
        )
        .await
    }

    /// order-service's `GET /admin/orders/counts`: the orders in each status, the stuck ones.
    pub async fn order_counts(&self, token: Option<&str>) -> anyhow::Result<OrderCounts> {
        self.read("order-service", &self.order, "/admin/orders/counts", token)
            .await
    }

    /// order-service's `GET /admin/orders/stuck?limit=`: the oldest `limit` stuck orders.
    pub async fn stuck_orders(&self, limit: i64, token: Option<&str>) -> anyhow::Result<StuckPage> {
        let path = format!("/admin/orders/stuck?limit={limit}");
        self.read("order-service", &self.order, &path, token).await
    }

    /// order-service's `GET /api/orders/{id}`: the order (None when it does not know it).
    pub async fn find_order(
        &self,
        id: i64,
        token: Option<&str>,
    ) -> anyhow::Result<Option<OrderView>> {
        let path = format!("/api/orders/{id}");
        self.get(&self.order, &path, token)
            .await?
            .read_found("order-service")
    }

    /// order-service's `GET /api/orders?userId=&size=`: the first `size` orders of `user`.
    pub async fn orders_of(
        &self,
        user: i64,
        size: i64,
        token: Option<&str>,
    ) -> anyhow::Result<Page> {
        let path = format!("/api/orders?userId={user}&size={size}");
        self.read("order-service", &self.order, &path, token).await
    }

    /// notification-service's `GET /api/notifications?orderId=`: an order's notifications,
    /// oldest first, each with its deliveries.
    pub async fn notifications_of(
        &self,
        order_id: i64,
        token: Option<&str>,
    ) -> anyhow::Result<Vec<Notification>> {
        let path = format!("/api/notifications?orderId={order_id}");
        self.read("notification-service", &self.notification, &path, token)
            .await
    }

    /// inventory-service's `GET /admin/dlt?<query>`: the dead letters (or, with
    /// `parked=true`, the parked records) the query's filter matches.
    pub async fn dead_letters(
        &self,
        query: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Vec<Summary>> {
        let path = format!("/admin/dlt?{query}");
        self.read("inventory-service", &self.inventory, &path, token)
            .await
    }

    /// `GET /admin/status` of the service at `base` (None when it cannot be had).
    pub async fn status(
        &self,
        base: &str,
        token: Option<&str>,
    ) -> Option<platform::status::ServiceStatus> {
        let reply = self.get(base, "/admin/status", token).await.ok()?;
        if !reply.ok() {
            return None;
        }
        serde_json::from_value(reply.body).ok()
    }
}

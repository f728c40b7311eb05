//! `openorder status`: consumer lag and outbox backlog of each running service, from their
//! `GET /admin/status` endpoints.

use clap::Args;
use platform::status::ServiceStatus;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// order-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_ORDER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    order_url: String,
    /// inventory-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_INVENTORY_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    inventory_url: String,
    /// notification-service's base URL.
    #[arg(
        long,
        env = "OPENORDER_NOTIFICATION_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    notification_url: String,
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    token: crate::token::ClientToken,
}

async fn fetch(http: &reqwest::Client, base: &str) -> anyhow::Result<ServiceStatus> {
    let url = format!("{}/admin/status", base.trim_end_matches('/'));
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(response.json().await?)
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let http = args
        .token
        .client(std::time::Duration::from_secs(15))
        .await?;
    let mut statuses = Vec::new();
    let mut failed = 0;
    let services = [
        ("order-service", &args.order_url),
        ("inventory-service", &args.inventory_url),
        ("notification-service", &args.notification_url),
    ];
    for (service, base) in services {
        match fetch(&http, base).await {
            Ok(status) => statuses.push(status),
            Err(err) => {
                failed += 1;
                eprintln!("{service} unreachable ({err:#})");
            }
        }
    }
    if statuses.is_empty() && !args.json {
        anyhow::bail!("OpenOrder is unreachable: no service answered (is `openorder up` running?)");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        println!("{:<22} {:>8} {:>14}", "OUTBOX", "PENDING", "OLDEST AGE");
        for s in &statuses {
            let age = s
                .outbox
                .oldest_age_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            println!("{:<22} {:>8} {:>14}", s.service, s.outbox.pending, age);
        }
        println!();
        println!(
            "{:<22} {:<34} {:<30} {:>4} {:>10} {:>10} {:>10} {:>10} {:>8}",
            "SERVICE", "GROUP", "TOPIC", "PART", "START", "KEPT", "COMMITTED", "END", "LAG"
        );
        for s in &statuses {
            for c in &s.consumers {
                if let Some(err) = &c.error {
                    println!("{:<22} {:<34} error: {err}", s.service, c.group);
                }
                for p in &c.partitions {
                    println!(
                        "{:<22} {:<34} {:<30} {:>4} {:>10} {:>10} {:>10} {:>10} {:>8}",
                        s.service,
                        c.group,
                        p.topic,
                        p.partition,
                        p.start,
                        (p.end - p.start).max(0),
                        p.committed
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "-".into()),
                        p.end,
                        p.lag
                    );
                }
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} service(s) unreachable");
    Ok(())
}

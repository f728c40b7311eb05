//! What a notification says: per kind of notification, a subject, a plain-text body and an
//! HTML body, rendered with [minijinja](https://docs.rs/minijinja) (Jinja2 syntax; HTML
//! templates auto-escape). The defaults live in `templates/` and are compiled into the
//! binary; `--templates-dir` may hold files of the same names (e.g.
//! `order.confirmed.html`) that replace them one by one. Every template is compiled at
//! start, so a broken override stops the service with the file's name and line instead of
//! failing on the first order.

use std::path::Path;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;

/// The kinds of notification, each with its three templates.
pub const KINDS: [&str; 5] = [
    "order.confirmed",
    "order.rejected",
    "order.cancelled",
    "order.failed",
    "order.updated",
];

/// The file suffixes of a kind's templates: subject, plain text, HTML.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// The built-in templates, by file name.
const DEFAULTS: [(&str, &str); 15] = [
    (
        "order.confirmed.subject.txt",
        include_str!("../templates/order.confirmed.subject.txt"),
    ),
    (
        "order.confirmed.txt",
        include_str!("../templates/order.confirmed.txt"),
    ),
    (
        "order.confirmed.html",
        include_str!("../templates/order.confirmed.html"),
    ),
    (
        "order.rejected.subject.txt",
        include_str!("../templates/order.rejected.subject.txt"),
    ),
    (
        "order.rejected.txt",
        include_str!("../templates/order.rejected.txt"),
    ),
    (
        "order.rejected.html",
        include_str!("../templates/order.rejected.html"),
    ),
    (
        "order.cancelled.subject.txt",
        include_str!("../templates/order.cancelled.subject.txt"),
    ),
    (
        "order.cancelled.txt",
        include_str!("../templates/order.cancelled.txt"),
    ),
    (
        "order.cancelled.html",
        include_str!("../templates/order.cancelled.html"),
    ),
    (
        "order.failed.subject.txt",
        include_str!("../templates/order.failed.subject.txt"),
    ),
    (
        "order.failed.txt",
        include_str!("../templates/order.failed.txt"),
    ),
    (
        "order.failed.html",
        include_str!("../templates/order.failed.html"),
    ),
    (
        "order.updated.subject.txt",
        include_str!("../templates/order.updated.subject.txt"),
    ),
    (
        "order.updated.txt",
        include_str!("../templates/order.updated.txt"),
    ),
    (
        "order.updated.html",
        include_str!("../templates/order.updated.html"),
    ),
];

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, replaced by same-named files in `overrides` where present.
    pub fn load(overrides: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in DEFAULTS {
            let source = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.is_file() => std::fs::read_to_string(&path)
                    .with_context(|| format!("Failed to read template {}", path.display()))?,
                _ => source.to_string(),
            };
            env.add_template_owned(name, source)
                .with_context(|| format!("Template {name} does not compile"))?;
        }
        if let Some(dir) = overrides {
            let known: Vec<&str> = DEFAULTS.iter().map(|(name, _)| *name).collect();
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("Failed to read templates directory {}", dir.display()))?;
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if !known.contains(&name.as_str()) {
                    tracing::warn!(file = %name, dir = %dir.display(), "unknown template file ignored; known names are <kind>.subject.txt, <kind>.txt, <kind>.html for kinds {KINDS:?}");
                }
            }
        }
        Ok(Self { env })
    }

    /// Renders the subject and text of `kind` with `context`, and its HTML only if `html`
    /// (only e-mail sends it; otherwise it is left empty).
    pub fn render(
        &self,
        kind: &str,
        context: &impl Serialize,
        html: bool,
    ) -> anyhow::Result<Rendered> {
        let [subject, text, html] = PARTS.map(|part| {
            if part == "html" && !html {
                return Ok(String::new());
            }
            let name = format!("{kind}.{part}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(context))
                .with_context(|| format!("Failed to render template {name}"))
        });
        Ok(Rendered {
            // A subject is one line: a template's stray newline must not become a header break.
            subject: subject?
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" "),
            text: text?,
            html: html?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_renders_with_the_built_in_templates() {
        let templates = Templates::load(None).unwrap();
        let context = json!({
            "order_id": 7, "user_id": 42, "event_type": "inventory.reserved", "reason": "OUT_OF_STOCK",
            "items": [{"sku": "ABC-001", "qty": 2}, {"sku": "<b>", "qty": 1}],
            "shortages": [{"sku": "XYZ-100", "requested": 11, "available": 10}],
            "error": "boom",
        });
        for kind in KINDS {
            let r = templates.render(kind, &context, true).unwrap();
            assert!(r.subject.contains('7'), "{kind}: {r:?}");
            assert!(r.text.contains("Order 7"), "{kind}: {r:?}");
        }
        let confirmed = templates.render("order.confirmed", &context, true).unwrap();
        assert_eq!(
            confirmed.text,
            "Order 7 is confirmed: 2 × ABC-001, 1 × <b> reserved for you."
        );
        assert!(
            confirmed.html.contains("1 × &lt;b&gt;"),
            "{}",
            confirmed.html
        );
        let rejected = templates.render("order.rejected", &context, true).unwrap();
        assert_eq!(
            rejected.text,
            "Order 7 was rejected (OUT_OF_STOCK): XYZ-100 (asked 11, available 10)."
        );
    }

    #[test]
    fn without_html_only_the_html_part_is_left_out() {
        let templates = Templates::load(None).unwrap();
        let context =
            json!({"order_id": 7, "user_id": 42, "items": [{"sku": "ABC-001", "qty": 2}]});
        let all = templates.render("order.confirmed", &context, true).unwrap();
        let text_only = templates
            .render("order.confirmed", &context, false)
            .unwrap();
        assert!(!all.html.is_empty());
        assert_eq!(
            text_only,
            Rendered {
                html: String::new(),
                ..all
            }
        );
    }

    #[test]
    fn a_file_in_the_overrides_directory_replaces_its_default() {
        let dir = std::env::temp_dir().join(format!("oo-templates-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("order.confirmed.subject.txt"),
            "Yay, {{ order_id }}\nis on its way",
        )
        .unwrap();
        let templates = Templates::load(Some(&dir)).unwrap();
        let r = templates
            .render(
                "order.confirmed",
                &json!({"order_id": 9, "items": []}),
                true,
            )
            .unwrap();
        assert_eq!(r.subject, "Yay, 9 is on its way");
        assert!(r.text.starts_with("Order 9 is confirmed"));
    }

    #[test]
    fn a_broken_override_is_refused_at_load_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("oo-templates-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("order.failed.html"), "{% if %}").unwrap();
        let err = Templates::load(Some(&dir)).err().expect("refused");
        assert!(format!("{err:#}").contains("order.failed.html"), "{err:#}");
    }
}

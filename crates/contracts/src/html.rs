//! Text made safe for HTML and SVG: the console's lifecycle picture and the notification
//! digests' HTML escape their text with [`escape`].

/// `text` for HTML (or SVG) text and attribute values: `&`, `<`, `>`, `"` and `'` as
/// character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

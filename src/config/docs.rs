//! The configuration tables of README.md and tuning/config.md, generated from [`KEYS`]
//! (`tests/config_docs.rs` fails when the documents differ from them).

use super::KEYS;

/// Which document a table is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// README.md: what each key means.
    Readme,
    /// tuning/config.md: what each key bounds or changes.
    Tuning,
}

impl Table {
    /// The table's header line, by which the documents' table is found.
    pub fn header(self) -> &'static str {
        match self {
            Table::Readme => "| key | default | meaning |",
            Table::Tuning => "| key | default | what it bounds or changes |",
        }
    }

    /// The table in Markdown, one line per key and a last one for namespaces, each ending in
    /// a newline.
    pub fn render(self) -> String {
        let mut out = format!("{}\n|---|---|---|\n", self.header());
        for key in KEYS {
            let text = match self {
                Table::Readme => key.doc,
                Table::Tuning => key.tuning,
            };
            out += &format!("| `{}` | {} | {text} |\n", key.name, key.default_markdown());
        }
        out += match self {
            Table::Readme => "| `[namespaces.NAME]` | none | TOML tables: `subscribe`, `publish`, `echo`, `publish_rate` per namespace |\n",
            Table::Tuning => "| `[namespaces.NAME]` | — | `subscribe`, `publish`, `echo`, `publish_rate` (see docs/protocol.md) |\n",
        };
        out
    }

    /// The table as it stands in `document` (from its header to the first line that is not a
    /// table row), or `None` when the document has no such table.
    pub fn find_in(self, document: &str) -> Option<String> {
        let start = document.find(&format!("\n{}\n", self.header()))? + 1;
        let mut out = String::new();
        for line in document[start..].lines().take_while(|l| l.starts_with('|')) {
            out += line;
            out.push('\n');
        }
        Some(out)
    }
}

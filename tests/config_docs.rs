//! The configuration tables in README.md and tuning/config.md are generated from the key
//! declaration (`src/config/keys.rs`): this fails when a document differs from it. Run with
//! `FRAMECAST_BLESS=1` to rewrite the documents' tables from the declaration.

use framecast::config::docs::Table;

/// Compares (or, blessing, rewrites) `table` in the repository file `path`.
fn check(path: &str, table: Table) {
    let file = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap();
    let found = table
        .find_in(&text)
        .unwrap_or_else(|| panic!("{path} has no table headed `{}`", table.header()));
    let expected = table.render();
    if found == expected {
        return;
    }
    if std::env::var_os("FRAMECAST_BLESS").is_some() {
        std::fs::write(&file, text.replacen(&found, &expected, 1)).unwrap();
        return;
    }
    panic!(
        "{path}'s configuration table differs from src/config/keys.rs; \
         rerun with FRAMECAST_BLESS=1 to regenerate it. Expected:\n{expected}"
    );
}

#[test]
fn the_readme_configuration_table_matches_the_declared_keys() {
    check("README.md", Table::Readme);
}

#[test]
fn the_tuning_guide_key_table_matches_the_declared_keys() {
    check("tuning/config.md", Table::Tuning);
}

#[test]
fn every_declared_key_has_a_row_in_each_table() {
    for table in [Table::Readme, Table::Tuning] {
        let rendered = table.render();
        for key in framecast::config::KEYS {
            let row = format!("| `{}` |", key.name);
            assert!(rendered.contains(&row), "{table:?} lacks {}", key.name);
        }
    }
}

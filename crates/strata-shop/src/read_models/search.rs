//! Product search: the catalog's names and descriptions in an SQLite FTS5 index, queried
//! by words (each a prefix) and ranked by BM25 with the name weighing more than the
//! description. Built from the `product` category.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use strata_core::RecordedEvent;
use strata_domain::Aggregate;
use strata_projection::{ApplyError, SqliteProjection};
use strata_store::ReadFilter;

use super::{decode, exec, sql, unsigned};
use crate::domain::{Money, Product, ProductEvent};

/// The projection's name.
pub const PRODUCT_SEARCH: &str = "shop_search";

/// How much a match in the name weighs against one in the description.
const NAME_WEIGHT: f64 = 10.0;

/// The most words a query keeps.
pub(super) const MAX_QUERY_WORDS: usize = 16;

/// A product found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The sku.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The unit price.
    pub price: Money,
    /// Relevance: higher is better (BM25, sign flipped).
    pub score: f64,
}

/// The product-search projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductSearch;

/// Turns free text into an FTS5 query: every word (a run of letters and digits) must
/// match, as a prefix. `None` if the text has no word. The words are quoted, so no FTS5
/// syntax from the caller ever reaches SQLite.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl SqliteProjection for ProductSearch {
    fn name(&self) -> &'static str {
        PRODUCT_SEARCH
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category(Product::CATEGORY)
    }

    fn migrate(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE search_products (
                 id INTEGER PRIMARY KEY,
                 sku TEXT NOT NULL UNIQUE,
                 name TEXT NOT NULL,
                 description TEXT NOT NULL,
                 price INTEGER NOT NULL
             );
             CREATE VIRTUAL TABLE search_index USING fts5 (
                 name, description,
                 content = 'search_products', content_rowid = 'id',
                 tokenize = 'unicode61 remove_diacritics 2'
             );",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        match decode::<ProductEvent>(event)? {
            ProductEvent::Created {
                sku,
                name,
                description,
                price,
            } => {
                let existing: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM search_products WHERE sku = ?1",
                        params![sku],
                        |row| row.get(0),
                    )
                    .optional()?;
                if existing.is_some() {
                    // A product is created once; a repeat changes nothing.
                    return Ok(());
                }
                exec(
                    tx,
                    "INSERT INTO search_products (sku, name, description, price)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![sku, name, description, sql(price.0)],
                )?;
                let id = tx.last_insert_rowid();
                exec(
                    tx,
                    "INSERT INTO search_index (rowid, name, description) VALUES (?1, ?2, ?3)",
                    params![id, name, description],
                )?;
            }
            ProductEvent::PriceChanged { sku, price, .. } => {
                // The price is not indexed: the FTS5 index needs no update.
                exec(
                    tx,
                    "UPDATE search_products SET price = ?2 WHERE sku = ?1",
                    params![sku, sql(price.0)],
                )?;
            }
        }
        Ok(())
    }
}

impl ProductSearch {
    /// The products matching every word of `text`, best first (ties by sku), at most
    /// `limit` of them after skipping the first `offset`.
    pub fn search(
        conn: &rusqlite::Connection,
        text: &str,
        offset: usize,
        limit: usize,
    ) -> rusqlite::Result<Vec<SearchHit>> {
        let Some(query) = fts_query(text) else {
            return Ok(Vec::new());
        };
        let mut statement = conn.prepare_cached(
            "SELECT p.sku, p.name, p.description, p.price, bm25(search_index, ?3, 1.0) AS rank
             FROM search_index JOIN search_products p ON p.id = search_index.rowid
             WHERE search_index MATCH ?1
             ORDER BY rank, p.sku
             LIMIT ?2 OFFSET ?4",
        )?;
        statement
            .query_map(
                params![query, sql(limit as u64), NAME_WEIGHT, sql(offset as u64)],
                |row| {
                    Ok(SearchHit {
                        sku: row.get(0)?,
                        name: row.get(1)?,
                        description: row.get(2)?,
                        price: Money(unsigned(row.get(3)?)),
                        score: -row.get::<_, f64>(4)?,
                    })
                },
            )?
            .collect()
    }
}

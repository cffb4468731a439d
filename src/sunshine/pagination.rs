//! Sunshine's cursor pagination: `page[after]`, `page[before]`, `page[size]`, answered with
//! `meta{hasMore, afterCursor, beforeCursor}` (the surface builds `links`); and the native
//! account-key list's `after` cursor.

use super::{model::KeyScope, service::OBJECT_ID_LEN, store::Cursor};
use crate::kernel::{CoreError, Result, types::ids};

pub const DEFAULT_PAGE_SIZE: i64 = 25;
pub const MAX_PAGE_SIZE: i64 = 100;

/// Which page of a list: after or before an id, and how many.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub before: Option<String>,
    pub size: Option<i64>,
}

/// A page and where it sits (Sunshine's `meta`; the surface builds `links` from it).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    /// A `page[after]` value for the next page, when there is one.
    pub next: Option<String>,
    /// A `page[before]` value for the previous page, when there is one.
    pub prev: Option<String>,
    pub after_cursor: Option<String>,
    pub before_cursor: Option<String>,
}

impl PageRequest {
    pub(super) fn cursor(&self) -> Result<(Cursor<'_>, i64)> {
        let size = self.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(CoreError::malformed(
                "page[size]",
                format!("page[size] must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let cursor = match (&self.after, &self.before) {
            (Some(_), Some(_)) => {
                return Err(CoreError::malformed(
                    "page",
                    "page[after] and page[before] cannot be used together",
                ));
            }
            // A cursor is an app or integration id: one of another shape names no row.
            (Some(c), _) | (_, Some(c)) if !c.is_empty() && !ids::lower_hex(c, OBJECT_ID_LEN) => {
                return Err(CoreError::malformed(
                    "page",
                    "page[after] and page[before] take an id from a previous page",
                ));
            }
            (Some(after), None) => Cursor::After(after),
            (None, Some(before)) => Cursor::Before(before),
            (None, None) => Cursor::After(""),
        };
        Ok((cursor, size))
    }

    /// Cuts `rows` (read with one extra row beyond the page) into a page.
    pub(super) fn page<R, T: From<R>>(
        &self,
        mut rows: Vec<R>,
        size: i64,
        id: fn(&R) -> &str,
    ) -> Page<T> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let has_more = rows.len() > size;
        let backwards = self.before.is_some();
        if has_more {
            // The extra row is the one furthest from the cursor.
            if backwards {
                rows.remove(0);
            } else {
                rows.truncate(size);
            }
        }
        let first = rows.first().map(|r| id(r).to_owned());
        let last = rows.last().map(|r| id(r).to_owned());
        let (next, prev) = if backwards {
            (
                last.clone().or(self.before.clone()),
                first.clone().filter(|_| has_more),
            )
        } else {
            (
                last.clone().filter(|_| has_more),
                first.clone().filter(|_| self.after.is_some()),
            )
        };
        Page {
            items: rows.into_iter().map(T::from).collect(),
            has_more,
            next,
            prev,
            after_cursor: last,
            before_cursor: first,
        }
    }
}

/// Where a page of account keys resumes: `{created_at}.{id}` of the last key of the previous
/// page (a deleted key still marks its place).
pub(super) struct AccountKeyCursor<'a> {
    pub(super) created_at: i64,
    pub(super) id: &'a str,
}

impl<'a> AccountKeyCursor<'a> {
    pub(super) fn parse(raw: &'a str) -> Result<Self> {
        raw.split_once('.')
            .and_then(|(at, id)| {
                let created_at = at.parse().ok()?;
                (KeyScope::of_key_id(id) == Some(KeyScope::Account))
                    .then_some(Self { created_at, id })
            })
            .ok_or_else(|| {
                CoreError::invalid("after", "after must be the next_cursor of a previous page")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_the_extra_row_on_the_far_side() {
        #[derive(Debug)]
        struct R(String);
        impl From<R> for String {
            fn from(r: R) -> Self {
                r.0
            }
        }
        let rows = |ids: &[&str]| ids.iter().map(|i| R((*i).to_owned())).collect::<Vec<_>>();
        let forward = PageRequest::default();
        let page: Page<String> = forward.page(rows(&["a", "b", "c"]), 2, |r: &R| &r.0);
        assert_eq!(page.items, ["a", "b"]);
        assert!(page.has_more);
        assert_eq!(page.next.as_deref(), Some("b"));
        assert_eq!(page.prev, None);
        let backward = PageRequest {
            before: Some("z".into()),
            ..Default::default()
        };
        let page: Page<String> = backward.page(rows(&["a", "b", "c"]), 2, |r: &R| &r.0);
        assert_eq!(page.items, ["b", "c"]);
        assert_eq!(page.prev.as_deref(), Some("b"));
        assert_eq!(page.next.as_deref(), Some("c"));
        let last: Page<String> = PageRequest {
            after: Some("a".into()),
            ..Default::default()
        }
        .page(rows(&["b"]), 2, |r: &R| &r.0);
        assert!(!last.has_more);
        assert_eq!(last.next, None);
        assert_eq!(last.prev.as_deref(), Some("b"));
    }
}

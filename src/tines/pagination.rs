//! Tines pagination: `page` and `per_page` (default 20, at most 500), answered with
//! `meta{current_page, previous_page, next_page, next_page_number, per_page, pages, count}`.

use super::store::Page;
use crate::kernel::{CoreError, Result};

/// Tines's default and largest page sizes.
pub const DEFAULT_PER_PAGE: i64 = 20;
pub const MAX_PER_PAGE: i64 = 500;

/// A validated `page` / `per_page` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    /// `page` ≥ 1 (default 1); `per_page` in 1..=500 (default 20; larger values are capped).
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self> {
        let int = |field: &str, v: Option<&str>, default: i64| -> Result<i64> {
            match v {
                None | Some("") => Ok(default),
                Some(s) => match s.parse::<i64>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(CoreError::malformed(
                        field,
                        format!("{field} must be a positive integer"),
                    )),
                },
            }
        };
        Ok(Self {
            page: int("page", page, 1)?,
            per_page: int("per_page", per_page, DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
        })
    }

    pub(super) fn slice(self) -> Page {
        Page {
            offset: (self.page - 1).saturating_mul(self.per_page),
            limit: self.per_page,
        }
    }
}

/// One page of a list and what the surface needs to describe it.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: PageRequest,
    pub count: i64,
}

impl<T> Paged<T> {
    pub fn pages(&self) -> i64 {
        (self.count + self.page.per_page - 1) / self.page.per_page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_default_cap_and_refuse_nonsense() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(
            PageRequest::parse(Some("3"), Some("1000")).unwrap(),
            PageRequest {
                page: 3,
                per_page: 500
            }
        );
        assert!(PageRequest::parse(Some("0"), None).is_err());
        assert!(PageRequest::parse(None, Some("-1")).is_err());
        assert!(PageRequest::parse(Some("x"), None).is_err());
    }
}

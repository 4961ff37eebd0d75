//! The addresses behind opaque unsubscribe tokens ([`crate::unsubscribe::Key::token`]). A
//! token is a MAC of the address, so it is resolved by looking it up among the ids of the
//! addresses mail went to: every link sent belongs to a delivery or a sign-up recorded before
//! the message was made. The ids are filled in lazily, from the rows added since the last fill
//! (the deliveries of the newest issue and later ones, and sign-ups, whose addresses have no id
//! yet), so a guessed token costs a few indexed queries, not a pass over every address.

use rusqlite::{params, OptionalExtension};

use super::{sql, Store, StoreError};

/// `meta` key: the newest issue whose deliveries' addresses have their ids. That issue is
/// looked at again on the next fill, in case deliveries were added to it since.
const DELIVERIES_DONE: &str = "unsubscribe_ids.deliveries";

impl Store {
    /// The address whose token is `token`, where `id_of` makes the token of an address.
    /// `None` when no address mail went to has that token.
    pub fn unsubscribe_address(
        &mut self,
        token: &str,
        id_of: impl Fn(&str) -> String,
    ) -> Result<Option<String>, StoreError> {
        if let Some(address) = self.address_of_id(token)? {
            return Ok(Some(address));
        }
        self.fill_unsubscribe_ids(id_of)?;
        self.address_of_id(token)
    }

    fn address_of_id(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT address FROM unsubscribe_ids WHERE id = ?1",
                [token],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))
    }

    fn fill_unsubscribe_ids(&mut self, id_of: impl Fn(&str) -> String) -> Result<(), StoreError> {
        let p = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&p, e))?;
        let done: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [DELIVERIES_DONE],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| sql(&p, e))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut last = done;
        let mut addresses = Vec::new();
        {
            let mut q = tx
                .prepare(
                    "SELECT issue_id, address FROM deliveries WHERE issue_id >= ?1
                     AND address NOT LIKE 'sha256:%'
                     AND address NOT IN (SELECT address FROM unsubscribe_ids)",
                )
                .map_err(|e| sql(&p, e))?;
            let rows = q
                .query_map([done], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| sql(&p, e))?;
            for row in rows {
                let (issue, address) = row.map_err(|e| sql(&p, e))?;
                last = last.max(issue);
                addresses.push(address);
            }
            let mut q = tx
                .prepare(
                    "SELECT address FROM signups WHERE address NOT LIKE 'sha256:%'
                     AND address NOT IN (SELECT address FROM unsubscribe_ids)",
                )
                .map_err(|e| sql(&p, e))?;
            let rows = q
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| sql(&p, e))?;
            for row in rows {
                addresses.push(row.map_err(|e| sql(&p, e))?);
            }
        }
        addresses.sort();
        addresses.dedup();
        for address in &addresses {
            tx.execute(
                "INSERT OR IGNORE INTO unsubscribe_ids (id, address) VALUES (?1, ?2)",
                params![id_of(address), address],
            )
            .map_err(|e| sql(&p, e))?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![DELIVERIES_DONE, last.to_string()],
        )
        .map_err(|e| sql(&p, e))?;
        tx.commit().map_err(|e| sql(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unsubscribe::Key;

    #[test]
    fn a_token_resolves_to_the_address_mail_went_to_and_a_guess_to_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let key = Key::new(b"k".repeat(32));
        let now = chrono::Utc::now();
        store
            .add_signup("Mika@Example.JP", "", "web", "電話で同意", now)
            .unwrap();
        let id_of = |a: &str| key.token(a);
        let found = store.unsubscribe_address(&key.token("mika@example.jp"), id_of);
        assert_eq!(found.unwrap().as_deref(), Some("mika@example.jp"));
        let guess = key.token("nobody@example.jp");
        assert_eq!(store.unsubscribe_address(&guess, id_of).unwrap(), None);
        let foreign = Key::new(b"o".repeat(32)).token("mika@example.jp");
        assert_eq!(store.unsubscribe_address(&foreign, id_of).unwrap(), None);
    }
}

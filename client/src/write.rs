//! Keeping the cache in step with the source: write-through and
//! invalidation by key and by prefix.

use std::future::Future;
use std::time::Duration;

use crate::client::Client;
use crate::conn::Expect;
use crate::error::{BoxError, Error, Result};
use crate::proto::request::Cmd;
use crate::proto::response::Status;

impl Client {
    /// Runs `write` (the source's write, e.g. an SQL `UPDATE`) and, once it
    /// succeeded, stores `value` under `key` for `ttl`. A failed source
    /// write is [`Error::Source`] and leaves the cache alone; if the cache
    /// store then fails, the key is deleted (so no old value outlives the
    /// write) and the store's error returned.
    pub async fn write_through<F, Fut, E>(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
        write: F,
    ) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Into<BoxError>,
    {
        write().await.map_err(|e| Error::Source(e.into()))?;
        let key = key.as_ref();
        match self.set(key, value, ttl).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.delete(key).await;
                Err(e)
            }
        }
    }

    /// Marks `key` stale (`md <key> I`): readers still get the old value,
    /// flagged, and the next [`get_or_load`](Client::get_or_load) caller
    /// reloads it while the others keep being served. False if the key was
    /// absent. Use it after a source change when serving the old value for
    /// one load's time is acceptable; use [`delete`](Client::delete)
    /// otherwise.
    pub async fn invalidate(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let (r, i) = self
            .one(key.as_ref(), |b, k| Cmd::new(b, "md", k).flag(b'I').end())
            .await?;
        match r.status {
            Status::Stored => Ok(true),
            Status::NotFound => Ok(false),
            other => Err(self.protocol(i, &format!("unexpected reply to md: {other:?}"))),
        }
    }

    /// Makes every key starting with `prefix` invisible on every member, by
    /// sending the server's prefix-invalidation command
    /// ([`ClientBuilder::prefix_command`](crate::ClientBuilder::prefix_command))
    /// as `<command> <prefix>`. A server without it answers `ERROR`:
    /// [`Error::Unsupported`] (memcached has none; corecache's is planned).
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<()> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic()) || prefix.len() > 250
        {
            return Err(Error::InvalidKey(format!("prefix {prefix:?}")));
        }
        let line = format!("{} {prefix}\r\n", self.inner.cfg.prefix_command);
        for i in 0..self.inner.pools.len() {
            let r = self
                .call_with(i, line.clone().into_bytes(), Expect::Replies(1), false)
                .await?;
            let r = r.first().ok_or_else(|| self.protocol(i, "no reply"))?;
            self.check(i, r)?;
            match &r.status {
                Status::Stored => {}
                Status::Other(l) if l == "OK" => {}
                other => return Err(self.protocol(i, &format!("unexpected reply: {other:?}"))),
            }
        }
        Ok(())
    }
}

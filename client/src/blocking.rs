//! A blocking wrapper for code without an async runtime.

use std::time::Duration;

use crate::client::Client;
use crate::config::ClientBuilder;
use crate::error::{BoxError, Error, Result};
use crate::ops::{Item, StoreOptions};

/// The [`Client`] for synchronous code: each call blocks the calling thread
/// until its reply is in. It owns a one-thread tokio runtime that runs the
/// connections. Calling it from inside an async runtime panics (use
/// [`Client`] there).
#[derive(Debug)]
pub struct BlockingClient {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// Builds the client and its runtime. Errors ([`Error::Config`]) only
    /// if the runtime's thread cannot be started.
    pub fn new(builder: ClientBuilder) -> Result<BlockingClient> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("corecache-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))?;
        Ok(BlockingClient {
            rt,
            client: builder.build(),
        })
    }

    /// The async client underneath (its calls need this wrapper's runtime
    /// or another one).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// See [`Client::get`].
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.rt.block_on(self.client.get(key))
    }

    /// See [`Client::gets`].
    pub fn gets(&self, key: impl AsRef<[u8]>) -> Result<Option<Item>> {
        self.rt.block_on(self.client.gets(key))
    }

    /// See [`Client::set`].
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        self.rt.block_on(self.client.set(key, value, ttl))
    }

    /// See [`Client::add`].
    pub fn add(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<bool> {
        self.rt.block_on(self.client.add(key, value, ttl))
    }

    /// See [`Client::store`].
    pub fn store(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: &StoreOptions,
    ) -> Result<()> {
        self.rt.block_on(self.client.store(key, value, opts))
    }

    /// See [`Client::delete`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.rt.block_on(self.client.delete(key))
    }

    /// See [`Client::mget`].
    pub fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        self.rt.block_on(self.client.mget(keys))
    }

    /// See [`Client::mset`].
    pub fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: &[(K, V)],
        ttl: Duration,
    ) -> Result<()> {
        self.rt.block_on(self.client.mset(pairs, ttl))
    }

    /// See [`Client::incr`].
    pub fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<u64> {
        self.rt.block_on(self.client.incr(key, delta))
    }

    /// See [`Client::decr`].
    pub fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<u64> {
        self.rt.block_on(self.client.decr(key, delta))
    }

    /// See [`Client::expire`].
    pub fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        self.rt.block_on(self.client.expire(key, ttl))
    }

    /// See [`Client::ttl`].
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>> {
        self.rt.block_on(self.client.ttl(key))
    }

    /// See [`Client::invalidate`].
    pub fn invalidate(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.rt.block_on(self.client.invalidate(key))
    }

    /// See [`Client::get_or_load`]; `loader` runs on the calling thread.
    pub fn get_or_load<F, E>(
        &self,
        key: impl AsRef<[u8]>,
        ttl: Duration,
        loader: F,
    ) -> Result<Vec<u8>>
    where
        F: FnOnce() -> std::result::Result<Vec<u8>, E>,
        E: Into<BoxError>,
    {
        self.rt
            .block_on(self.client.get_or_load(key, ttl, || async { loader() }))
    }

    /// See [`Client::write_through`]; `write` runs on the calling thread.
    pub fn write_through<F, E>(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
        write: F,
    ) -> Result<()>
    where
        F: FnOnce() -> std::result::Result<(), E>,
        E: Into<BoxError>,
    {
        self.rt.block_on(
            self.client
                .write_through(key, value, ttl, || async { write() }),
        )
    }
}

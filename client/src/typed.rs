//! The client's calls with serde values instead of bytes.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::codec::Codec;
use crate::error::{BoxError, Error, Result};

/// A [`Client`] whose values go through a [`Codec`]; made by
/// [`Client::typed`] (or [`Client::json`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Typed<C> {
    client: Client,
    codec: C,
}

impl Client {
    /// This client with values encoded by `codec`.
    pub fn typed<C: Codec>(&self, codec: C) -> Typed<C> {
        Typed {
            client: self.clone(),
            codec,
        }
    }

    /// This client with JSON values (feature `json`).
    #[cfg(feature = "json")]
    pub fn json(&self) -> Typed<crate::codec::Json> {
        self.typed(crate::codec::Json)
    }
}

impl<C: Codec> Typed<C> {
    /// The byte-level client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn encode<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>> {
        self.codec.encode(v).map_err(Error::Codec)
    }

    fn decode<T: DeserializeOwned>(&self, b: &[u8]) -> Result<T> {
        self.codec.decode(b).map_err(Error::Codec)
    }

    /// The value under `key`, decoded; None on a miss, [`Error::Codec`] if
    /// the bytes do not decode as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        match self.client.get(key).await? {
            Some(b) => self.decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// Encodes and stores `value` under `key` for `ttl`.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let b = self.encode(value)?;
        self.client.set(key, b, ttl).await
    }

    /// The values under `keys`, in order, decoded; None for a miss.
    pub async fn mget<T: DeserializeOwned, K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<T>>> {
        self.client
            .mget(keys)
            .await?
            .into_iter()
            .map(|v| v.map(|b| self.decode(&b)).transpose())
            .collect()
    }

    /// Encodes and stores every pair for `ttl` in one pipelined request per
    /// member.
    pub async fn mset<T: Serialize, K: AsRef<[u8]>>(
        &self,
        pairs: &[(K, T)],
        ttl: Duration,
    ) -> Result<()> {
        let enc = pairs
            .iter()
            .map(|(k, v)| Ok((k.as_ref(), self.encode(v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.client.mset(&enc, ttl).await
    }

    /// [`Client::get_or_load`] with a typed loader. A cached value that no
    /// longer decodes as `T` (the type changed) is reloaded and
    /// overwritten, not returned as an error.
    pub async fn get_or_load<T, F, Fut, E>(
        &self,
        key: impl AsRef<[u8]>,
        ttl: Duration,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<BoxError>,
    {
        let key = key.as_ref();
        let mut loader = Some(loader);
        let mut loaded: Option<T> = None;
        let mut encode_failed = false;
        let res = self
            .client
            .get_or_load(key, ttl, || async {
                let f = loader.take().expect("the loader runs once");
                let v = f().await.map_err(Into::into)?;
                match self.codec.encode(&v) {
                    Ok(b) => {
                        loaded = Some(v);
                        Ok::<_, BoxError>(b)
                    }
                    Err(e) => {
                        encode_failed = true;
                        Err(e)
                    }
                }
            })
            .await;
        let bytes = match res {
            Ok(b) => b,
            Err(Error::Source(e)) if encode_failed => return Err(Error::Codec(e)),
            Err(e) => return Err(e),
        };
        if let Some(v) = loaded {
            return Ok(v);
        }
        match (self.decode(&bytes), loader.take()) {
            (Ok(v), _) => Ok(v),
            // Cached under another type: reload and overwrite rather than
            // fail every reader until the TTL ends.
            (Err(_), Some(f)) => {
                let v = f().await.map_err(|e| Error::Source(e.into()))?;
                let _ = self
                    .client
                    .set(key, self.encode(&v)?, self.client.jittered(ttl))
                    .await;
                Ok(v)
            }
            (Err(e), None) => Err(e),
        }
    }
}

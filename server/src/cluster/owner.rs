//! Who owns a bucket prefix: `owner.json` at the prefix's root names the
//! cluster and the broker whose tiered data lives there. Written once, at
//! the broker's first start in a cluster (a conditional create, so two
//! brokers racing for one prefix cannot both win); checked at every start,
//! so two clusters — or two brokers of one cluster — pointed at the same
//! prefix are refused instead of overwriting each other's manifests and
//! `cluster.json`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::tiering::store::RemoteStore;
use crate::tiering::TieringError;

pub use crate::tiering::manifest::OWNER_KEY;

/// What `owner.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The cluster's id.
    pub cluster_id: String,
    /// The broker's node id.
    pub node_id: u32,
}

/// Why a prefix cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Another cluster or broker owns the prefix.
    #[error("the object store prefix {url} belongs to {}; give each broker its own prefix", describe(.owner, .cluster_id))]
    Taken {
        /// The store's URL.
        url: String,
        /// The owner found there.
        owner: Owner,
        /// This broker's cluster id.
        cluster_id: String,
    },
    /// The object is there but unreadable.
    #[error("{url}/{OWNER_KEY} is not valid: {detail}")]
    Invalid {
        /// The store's URL.
        url: String,
        /// The parse error.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] TieringError),
}

fn describe(owner: &Owner, ours: &str) -> String {
    if owner.cluster_id == ours {
        format!("broker {} of this cluster", owner.node_id)
    } else {
        format!(
            "broker {} of another cluster ({})",
            owner.node_id, owner.cluster_id
        )
    }
}

/// Claims the prefix for `me`, or checks that `me` owns it.
pub async fn claim(store: &RemoteStore, me: &Owner) -> Result<(), OwnerError> {
    let url = store.url().to_string();
    let found = match store.get(OWNER_KEY).await? {
        Some((bytes, _)) => {
            Some(
                serde_json::from_slice::<Owner>(&bytes).map_err(|e| OwnerError::Invalid {
                    url: url.clone(),
                    detail: e.to_string(),
                })?,
            )
        }
        None => {
            let body = serde_json::to_vec(me).map_err(|e| OwnerError::Invalid {
                url: url.clone(),
                detail: e.to_string(),
            })?;
            match store
                .put_conditional(OWNER_KEY, Bytes::from(body), None)
                .await
            {
                Ok(_) => None,
                // Someone else created it first: read what they wrote.
                Err(TieringError::Fenced { .. }) => match store.get(OWNER_KEY).await? {
                    Some((bytes, _)) => serde_json::from_slice::<Owner>(&bytes).ok(),
                    None => None,
                },
                Err(e) => return Err(e.into()),
            }
        }
    };
    match found {
        Some(owner) if owner != *me => Err(OwnerError::Taken {
            url,
            owner,
            cluster_id: me.cluster_id.clone(),
        }),
        _ => Ok(()),
    }
}

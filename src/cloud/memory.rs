//! An in-memory [`Cloud`] for table tests of apply: key pairs per scope, a log of every
//! call, and scripted faults. It generates real ed25519 keys, so what apply saves can be read
//! back; the CLI's behaviour is tested against the local EC2 server, not this.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::{Cloud, CloudError, CloudErrorKind, CreatedKeyPair};
use crate::desired::{KeyName, KeyType, TagSet};
use crate::keys::{PublicKey, generate};
use crate::resource::{RemoteKeyPair, Scope};

/// What a scripted fault does to the next call of its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this error; nothing happens.
    Fail(CloudErrorKind),
    /// Do the work, then lose the answer (this error instead).
    LoseAnswer(CloudErrorKind),
    /// `CreateKeyPair` only: do the work, then answer with the private key cut short, as a
    /// body cut in a way HTTP takes as complete would.
    CutMaterial,
    /// A look (`DescribeKeyPairs`) that lags: it lists nothing.
    Hide,
}

#[derive(Default)]
struct State {
    pairs: BTreeMap<(String, String), RemoteKeyPair>,
    log: Vec<String>,
    faults: VecDeque<(&'static str, Fault)>,
    next_id: u32,
}

/// The in-memory cloud.
#[derive(Default)]
pub(crate) struct MemoryCloud {
    state: Mutex<State>,
    /// Run right after a key pair is created, before its answer returns (a racing writer).
    after_create: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl MemoryCloud {
    /// Script a fault for the next call of `operation` (in order).
    pub(crate) fn fault(&self, operation: &'static str, fault: Fault) {
        self.lock().faults.push_back((operation, fault));
    }

    /// Forget the scripted faults not reached yet.
    pub(crate) fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub(crate) fn after_create(&self, hook: impl Fn() + Send + 'static) {
        *self
            .after_create
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(hook));
    }

    /// Every call so far, as `Operation scope name`.
    pub(crate) fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub(crate) fn get(&self, region: &str, name: &str) -> Option<RemoteKeyPair> {
        self.lock()
            .pairs
            .get(&(region.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Put a key pair in place, as another tool (or an earlier run) would have.
    pub(crate) fn put(&self, region: &str, pair: RemoteKeyPair) {
        self.lock()
            .pairs
            .insert((region.to_owned(), pair.name.clone()), pair);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Log the call; the scripted fault for it, if one is next in line for this operation.
    fn call(&self, operation: &'static str, scope: &Scope, name: &str) -> Option<Fault> {
        let mut state = self.lock();
        state.log.push(format!("{operation} {scope} {name}"));
        let at = state.faults.iter().position(|(op, _)| *op == operation)?;
        state.faults.remove(at).map(|(_, fault)| fault)
    }

    fn error(operation: &'static str, scope: &Scope, kind: CloudErrorKind) -> CloudError {
        CloudError {
            kind,
            operation,
            scope: scope.to_string(),
            message: format!("scripted {kind:?}"),
        }
    }

    fn store(
        &self,
        scope: &Scope,
        name: &KeyName,
        public: &PublicKey,
        tags: &TagSet,
    ) -> RemoteKeyPair {
        let mut state = self.lock();
        state.next_id += 1;
        let pair = RemoteKeyPair {
            name: name.to_string(),
            id: Some(format!("key-{:04}", state.next_id)),
            fingerprint: None,
            key_type: KeyType::parse(public.key_type()),
            public_key: Some(public.clone()),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        state
            .pairs
            .insert((scope.to_string(), name.to_string()), pair.clone());
        pair
    }
}

impl Cloud for MemoryCloud {
    async fn describe_key_pairs(&self, scope: &Scope) -> Result<Vec<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        if let Some(Fault::Fail(kind) | Fault::LoseAnswer(kind)) = self.call(OP, scope, "") {
            return Err(Self::error(OP, scope, kind));
        }
        Ok(self
            .lock()
            .pairs
            .iter()
            .filter(|((r, _), _)| *r == scope.to_string())
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn create_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        key_type: KeyType,
        tags: &TagSet,
    ) -> Result<CreatedKeyPair, CloudError> {
        const OP: &str = "CreateKeyPair";
        let fault = self.call(OP, scope, name.as_str());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(Self::error(OP, scope, kind));
        }
        if self.get(&scope.to_string(), name.as_str()).is_some() {
            return Err(Self::error(OP, scope, CloudErrorKind::Duplicate));
        }
        let (material, public) = generate(key_type, 2048).map_err(|message| CloudError {
            kind: CloudErrorKind::Other,
            operation: OP,
            scope: scope.to_string(),
            message,
        })?;
        let pair = self.store(scope, name, &public, tags);
        if let Some(hook) = self
            .after_create
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            hook();
        }
        if let Some(Fault::LoseAnswer(kind)) = fault {
            return Err(Self::error(OP, scope, kind));
        }
        let fingerprint = crate::keys::fingerprint::created(&material, &public);
        let material = if fault == Some(Fault::CutMaterial) {
            let text = material.expose();
            crate::keys::Secret::new(text[..text.len() / 2].to_owned())
        } else {
            material
        };
        Ok(CreatedKeyPair {
            id: pair.id,
            fingerprint,
            material,
        })
    }

    async fn import_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        public_key: &PublicKey,
        tags: &TagSet,
    ) -> Result<RemoteKeyPair, CloudError> {
        const OP: &str = "ImportKeyPair";
        let fault = self.call(OP, scope, name.as_str());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(Self::error(OP, scope, kind));
        }
        if self.get(&scope.to_string(), name.as_str()).is_some() {
            return Err(Self::error(OP, scope, CloudErrorKind::Duplicate));
        }
        let pair = self.store(scope, name, public_key, tags);
        match fault {
            Some(Fault::LoseAnswer(kind)) => Err(Self::error(OP, scope, kind)),
            _ => Ok(pair),
        }
    }

    async fn find_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
    ) -> Result<Option<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        match self.call(OP, scope, name.as_str()) {
            Some(Fault::Fail(kind) | Fault::LoseAnswer(kind)) => Err(Self::error(OP, scope, kind)),
            Some(Fault::Hide) => Ok(None),
            Some(Fault::CutMaterial) | None => Ok(self.get(&scope.to_string(), name.as_str())),
        }
    }

    async fn delete_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        expected_id: Option<&str>,
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteKeyPair";
        if let Some(Fault::Fail(kind)) = self.call(OP, scope, name.as_str()) {
            return Err(Self::error(OP, scope, kind));
        }
        let mut state = self.lock();
        let key = (scope.to_string(), name.to_string());
        match (state.pairs.get(&key), expected_id) {
            (Some(found), Some(expected)) if found.id.as_deref() != Some(expected) => {
                Err(Self::error(OP, scope, CloudErrorKind::Changed))
            }
            _ => {
                state.pairs.remove(&key);
                Ok(())
            }
        }
    }

    async fn create_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        const OP: &str = "CreateTags";
        if let Some(Fault::Fail(kind) | Fault::LoseAnswer(kind)) =
            self.call(OP, scope, &ids.join(","))
        {
            return Err(Self::error(OP, scope, kind));
        }
        for pair in self.lock().pairs.values_mut() {
            if pair.id.as_ref().is_some_and(|id| ids.contains(id)) {
                pair.tags.extend(tags.clone());
            }
        }
        Ok(())
    }

    async fn delete_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteTags";
        if let Some(Fault::Fail(kind) | Fault::LoseAnswer(kind)) =
            self.call(OP, scope, &ids.join(","))
        {
            return Err(Self::error(OP, scope, kind));
        }
        for pair in self.lock().pairs.values_mut() {
            if pair.id.as_ref().is_some_and(|id| ids.contains(id)) {
                pair.tags.retain(|k, _| !keys.contains(k));
            }
        }
        Ok(())
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        let mut calls = BTreeMap::new();
        for line in &self.lock().log {
            let op = line.split(' ').next().unwrap_or_default().to_owned();
            *calls.entry(op).or_default() += 1;
        }
        calls
    }
}

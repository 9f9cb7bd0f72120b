//! Multi-instance mode, shared by both fakes: one account serving many
//! clusters, each with its own model and endpoint state, made on the first
//! request that names it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use clusterscale_sim::SimModel;

/// Makes the model of one fleet member, from its id.
pub type ModelFactory = Arc<dyn Fn(&str) -> Arc<SimModel> + Send + Sync>;

/// A fake's per-cluster endpoint state.
pub(crate) trait Member {
    fn model(&self) -> &Arc<SimModel>;
    /// The state of cluster `id` with `model`, sharing this one's account
    /// (credentials, faults, throttling windows, journal).
    fn sibling(&self, id: &str, model: Arc<SimModel>) -> Self;
}

/// The members of a multi-instance fake, created on first use.
pub(crate) struct Fleet<M> {
    ids: HashSet<String>,
    /// Id -> its endpoint state; the first id's is `default`.
    members: Mutex<HashMap<String, Arc<M>>>,
    make_model: ModelFactory,
    /// Answers requests naming no member of the fleet (the cloud's "not
    /// found"), and whatever names no cluster at all (Huawei's IAM).
    default: Arc<M>,
}

impl<M: Member> Fleet<M> {
    /// The first id of `ids`, whose member the fake builds itself (and hands
    /// to [`Fleet::new`] as the default). `ids` must not be empty.
    pub fn first(ids: &[String]) -> std::io::Result<String> {
        ids.first().cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a fleet needs an id")
        })
    }

    pub fn new(ids: Vec<String>, make_model: ModelFactory, first: String, default: Arc<M>) -> Self {
        Self {
            ids: ids.into_iter().collect(),
            members: Mutex::new(HashMap::from([(first, default.clone())])),
            make_model,
            default,
        }
    }

    /// The member a request names; the default for no id or an id outside
    /// the fleet.
    pub fn member(&self, named: Option<&str>) -> Arc<M> {
        let Some(id) = named.filter(|id| self.ids.contains(*id)) else {
            return self.default.clone();
        };
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(self.default.sibling(id, (self.make_model)(id))))
            .clone()
    }

    /// The member `id`, made now if no request named it yet; `None` for an
    /// id outside the fleet.
    pub fn get(&self, id: &str) -> Option<Arc<M>> {
        self.ids.contains(id).then(|| self.member(Some(id)))
    }

    /// Apply `f` to every member made so far (the default included).
    pub fn for_each(&self, f: impl Fn(&M)) {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.values().for_each(|m| f(m));
    }

    /// The models of the members used so far, by id.
    pub fn models(&self) -> Vec<Arc<SimModel>> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let mut models: Vec<_> = members.values().map(|m| m.model().clone()).collect();
        models.sort_by(|a, b| a.id().cmp(b.id()));
        models
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::clock::SystemClock;
    use clusterscale_sim::SimConfig;

    struct Stub(Arc<SimModel>);

    impl Member for Stub {
        fn model(&self) -> &Arc<SimModel> {
            &self.0
        }
        fn sibling(&self, _id: &str, model: Arc<SimModel>) -> Self {
            Stub(model)
        }
    }

    fn model(id: &str) -> Arc<SimModel> {
        Arc::new(SimModel::new(
            id,
            SimConfig::default(),
            Arc::new(SystemClock),
        ))
    }

    #[test]
    fn members_are_made_once_and_strangers_get_the_default() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let first = Fleet::<Stub>::first(&ids).unwrap();
        let fleet = Fleet::new(ids, Arc::new(model), first, Arc::new(Stub(model("a"))));
        let b = fleet.member(Some("b"));
        assert_eq!(b.0.id(), "b");
        assert!(Arc::ptr_eq(&b, &fleet.member(Some("b"))));
        assert_eq!(fleet.member(Some("zz")).0.id(), "a");
        assert_eq!(fleet.member(None).0.id(), "a");
        assert!(Arc::ptr_eq(&b, &fleet.get("b").unwrap()));
        assert!(fleet.get("zz").is_none());
        let ids: Vec<String> = fleet.models().iter().map(|m| m.id().to_string()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(Fleet::<Stub>::first(&[]).is_err());
    }
}

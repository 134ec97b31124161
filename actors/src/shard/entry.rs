use std::sync::Arc;

use ractor::ActorRef;

use crate::incident::IncidentMsg;
use crate::model::{CompactString, Incident, Timestamp};

use super::flush::RoundHistory;
use super::passive_input::PassiveWrites;

/// The group an incident belongs to: (tenant, group key). Shared between
/// the incident's entry and the shard's group map, so a million passivated
/// incidents do not hold their group strings twice.
pub(crate) type GroupRef = Arc<(CompactString, String)>;

/// The group of `incident`, as its shard keys it.
pub(crate) fn group_of(incident: &Incident) -> GroupRef {
    Arc::new((
        incident.tenant.as_ref().into(),
        incident.group_key.to_string(),
    ))
}

/// A live incident as its shard holds it.
pub(crate) enum Entry {
    /// Resident: an actor owns the state. `restart_from` is the last stored
    /// (or initial) state, used if the actor fails: a whole encoding and the
    /// change frames appended to it since, as the store holds them.
    Active {
        actor: ActorRef<IncidentMsg>,
        group: GroupRef,
        last_input: Timestamp,
        restart_from: Vec<Arc<Vec<u8>>>,
        /// Whether its rounds tend to take a single input, which decides if
        /// its first alerts of a round ask for its snapshot (`RoundInput`).
        rounds: RoundHistory,
    },
    /// Passivated: only the encoded state is kept, until the next input.
    /// `writes` is there once the shard updated it (at `max_resident`).
    Passive {
        bytes: Arc<Vec<u8>>,
        group: GroupRef,
        writes: Option<Box<PassiveWrites>>,
    },
}

impl Entry {
    /// A passivated incident the shard has not updated.
    pub fn passive(bytes: Arc<Vec<u8>>, group: GroupRef) -> Entry {
        Entry::Passive {
            bytes,
            group,
            writes: None,
        }
    }

    pub fn group(&self) -> &GroupRef {
        match self {
            Entry::Active { group, .. } | Entry::Passive { group, .. } => group,
        }
    }
}

//! `NativeAdmin` and the description classes it returns.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tidelog::{Admin, NewTopic, OffsetSpec, ResetSpec};

use crate::convert::{extract_tp, to_millis, topic_partition};
use crate::runtime::{connect, run, Bootstrap};

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct TopicListing {
    name: String,
    partitions: u32,
}

#[pymethods]
impl TopicListing {
    fn __repr__(&self) -> String {
        format!(
            "TopicListing(name={:?}, partitions={})",
            self.name, self.partitions
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct PartitionInfo {
    partition: u32,
    log_start_offset: i64,
    log_end_offset: i64,
    size_bytes: u64,
    segments: u32,
    leader: u32,
}

#[pymethods]
impl PartitionInfo {
    fn __repr__(&self) -> String {
        format!(
            "PartitionInfo(partition={}, log_start_offset={}, log_end_offset={}, size_bytes={}, segments={}, leader={})",
            self.partition, self.log_start_offset, self.log_end_offset, self.size_bytes, self.segments, self.leader
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct TopicDescription {
    name: String,
    config: std::collections::BTreeMap<String, String>,
    partitions: Vec<Py<PartitionInfo>>,
}

#[pymethods]
impl TopicDescription {
    fn __repr__(&self) -> String {
        format!(
            "TopicDescription(name={:?}, partitions={}, config={:?})",
            self.name,
            self.partitions.len(),
            self.config
        )
    }
}

fn describe(py: Python<'_>, t: tidelog::TopicDescription) -> PyResult<TopicDescription> {
    Ok(TopicDescription {
        name: t.name,
        config: t.config,
        partitions: t
            .partitions
            .into_iter()
            .map(|p| {
                Py::new(
                    py,
                    PartitionInfo {
                        partition: p.partition,
                        log_start_offset: p.log_start_offset,
                        log_end_offset: p.log_end_offset,
                        size_bytes: p.size_bytes,
                        segments: p.segments,
                        leader: p.leader,
                    },
                )
            })
            .collect::<PyResult<_>>()?,
    })
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct GroupListing {
    group_id: String,
    state: String,
    members: u32,
}

#[pymethods]
impl GroupListing {
    fn __repr__(&self) -> String {
        format!(
            "GroupListing(group_id={:?}, state={:?}, members={})",
            self.group_id, self.state, self.members
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct GroupMember {
    member_id: String,
    client_id: String,
    member_epoch: i32,
    topics: Vec<String>,
    assignment: Vec<Py<PyAny>>,
}

#[pymethods]
impl GroupMember {
    fn __repr__(&self) -> String {
        format!(
            "GroupMember(member_id={:?}, client_id={:?}, partitions={})",
            self.member_id,
            self.client_id,
            self.assignment.len()
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct PartitionLag {
    topic: String,
    partition: u32,
    committed_offset: Option<i64>,
    log_end_offset: i64,
    lag: i64,
    owner: Option<String>,
    metadata: String,
}

#[pymethods]
impl PartitionLag {
    fn __repr__(&self) -> String {
        format!(
            "PartitionLag(topic={:?}, partition={}, committed_offset={:?}, log_end_offset={}, lag={})",
            self.topic, self.partition, self.committed_offset, self.log_end_offset, self.lag
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct GroupDescription {
    group_id: String,
    state: String,
    group_epoch: i32,
    members: Vec<Py<GroupMember>>,
    partitions: Vec<Py<PartitionLag>>,
}

#[pymethods]
impl GroupDescription {
    fn __repr__(&self) -> String {
        format!(
            "GroupDescription(group_id={:?}, state={:?}, members={}, partitions={})",
            self.group_id,
            self.state,
            self.members.len(),
            self.partitions.len()
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct OffsetResetPlan {
    topic: String,
    partition: u32,
    old_offset: Option<i64>,
    new_offset: i64,
}

#[pymethods]
impl OffsetResetPlan {
    fn __repr__(&self) -> String {
        format!(
            "OffsetResetPlan(topic={:?}, partition={}, old_offset={:?}, new_offset={})",
            self.topic, self.partition, self.old_offset, self.new_offset
        )
    }
}

/// Topic and group administration.
#[pyclass(module = "tidelog._native", frozen, subclass)]
pub(crate) struct NativeAdmin {
    admin: Admin,
}

#[pymethods]
impl NativeAdmin {
    #[new]
    #[pyo3(signature = (bootstrap = Bootstrap::default(), *, request_timeout_ms = 30_000.0))]
    fn new(py: Python<'_>, bootstrap: Bootstrap, request_timeout_ms: f64) -> PyResult<Self> {
        let client = connect(py, &bootstrap, request_timeout_ms)?;
        Ok(NativeAdmin {
            admin: client.admin(),
        })
    }

    /// Creates a topic; returns its description.
    #[pyo3(signature = (name, partitions=1, config=None))]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: String,
        partitions: u32,
        config: Option<std::collections::BTreeMap<String, Bound<'_, PyAny>>>,
    ) -> PyResult<TopicDescription> {
        let mut topic = NewTopic::new(name, partitions);
        for (k, v) in config.unwrap_or_default() {
            topic = topic.config(k, v.str()?.to_string());
        }
        let d = run(py, self.admin.create_topic(topic))?;
        describe(py, d)
    }

    /// All topics.
    fn list_topics(&self, py: Python<'_>) -> PyResult<Vec<TopicListing>> {
        Ok(run(py, self.admin.list_topics())?
            .into_iter()
            .map(|t| TopicListing {
                name: t.name,
                partitions: t.partitions,
            })
            .collect())
    }

    /// A topic's config and partitions.
    fn describe_topic(&self, py: Python<'_>, name: String) -> PyResult<TopicDescription> {
        let d = run(py, self.admin.describe_topic(&name))?;
        describe(py, d)
    }

    /// Deletes a topic and all its data.
    fn delete_topic(&self, py: Python<'_>, name: String) -> PyResult<()> {
        run(py, self.admin.delete_topic(&name))
    }

    /// Sets config keys and resets others (`delete`) to their defaults.
    #[pyo3(signature = (name, set=None, delete=None))]
    fn alter_topic_config(
        &self,
        py: Python<'_>,
        name: String,
        set: Option<std::collections::BTreeMap<String, Bound<'_, PyAny>>>,
        delete: Option<Vec<String>>,
    ) -> PyResult<TopicDescription> {
        let mut pairs = Vec::new();
        for (k, v) in set.unwrap_or_default() {
            pairs.push((k, v.str()?.to_string()));
        }
        let delete = delete.unwrap_or_default();
        let d = run(py, self.admin.alter_topic_config(&name, pairs, delete))?;
        describe(py, d)
    }

    /// All consumer groups.
    fn list_groups(&self, py: Python<'_>) -> PyResult<Vec<GroupListing>> {
        Ok(run(py, self.admin.list_groups())?
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                state: g.state,
                members: g.members,
            })
            .collect())
    }

    /// A group's members, committed offsets and lag.
    fn describe_group(&self, py: Python<'_>, group_id: String) -> PyResult<GroupDescription> {
        let d = run(py, self.admin.describe_group(&group_id))?;
        Ok(GroupDescription {
            group_id: d.group_id,
            state: d.state,
            group_epoch: d.group_epoch,
            members: d
                .members
                .into_iter()
                .map(|m| {
                    let assignment = m
                        .assignment
                        .iter()
                        .map(|tp| topic_partition(py, tp).map(Bound::unbind))
                        .collect::<PyResult<_>>()?;
                    Py::new(
                        py,
                        GroupMember {
                            member_id: m.member_id,
                            client_id: m.client_id,
                            member_epoch: m.member_epoch,
                            topics: m.topics,
                            assignment,
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
            partitions: d
                .partitions
                .into_iter()
                .map(|p| {
                    Py::new(
                        py,
                        PartitionLag {
                            topic: p.topic,
                            partition: p.partition,
                            committed_offset: p.committed_offset,
                            log_end_offset: p.log_end_offset,
                            lag: p.lag,
                            owner: p.owner,
                            metadata: p.metadata,
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
        })
    }

    /// Deletes a group's committed offsets (refused while it has members:
    /// `GroupNotEmptyError`).
    fn delete_group(&self, py: Python<'_>, group_id: String) -> PyResult<()> {
        run(py, self.admin.delete_group(&group_id))
    }

    /// Moves a group's committed offsets of `topic` (all partitions unless
    /// `partitions`). `to`: "earliest", "latest", an int offset, or a
    /// datetime; or `shift_by=n` relative to the committed offsets.
    /// Refused while the group has members unless `force`. Returns the
    /// plan; `dry_run` only plans.
    #[pyo3(signature = (group_id, topic, to=None, *, shift_by=None, partitions=None, dry_run=false, force=false))]
    #[allow(clippy::too_many_arguments)]
    fn reset_offsets(
        &self,
        py: Python<'_>,
        group_id: String,
        topic: String,
        to: Option<&Bound<'_, PyAny>>,
        shift_by: Option<i64>,
        partitions: Option<Vec<u32>>,
        dry_run: bool,
        force: bool,
    ) -> PyResult<Vec<OffsetResetPlan>> {
        let spec = match (to, shift_by) {
            (Some(t), None) if !t.is_none() => {
                if let Ok(s) = t.extract::<String>() {
                    match s.to_ascii_lowercase().as_str() {
                        "earliest" | "beginning" => ResetSpec::Earliest,
                        "latest" | "end" => ResetSpec::Latest,
                        _ => {
                            return Err(PyValueError::new_err(
                                "to must be 'earliest', 'latest', an offset or a datetime",
                            ))
                        }
                    }
                } else if let Ok(o) = t.extract::<i64>() {
                    ResetSpec::Offset(o)
                } else {
                    ResetSpec::Timestamp(to_millis(t)?)
                }
            }
            (None, Some(d)) => ResetSpec::ShiftBy(d),
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of to=... and shift_by=...",
                ))
            }
        };
        let parts = partitions.unwrap_or_default();
        let plan = run(
            py,
            self.admin
                .reset_offsets(&group_id, &topic, &parts, spec, dry_run, force),
        )?;
        Ok(plan
            .into_iter()
            .map(|p| OffsetResetPlan {
                topic: p.topic,
                partition: p.partition,
                old_offset: p.old_offset,
                new_offset: p.new_offset,
            })
            .collect())
    }

    /// Commits offsets for a group without members, e.g. to seed it:
    /// `{TopicPartition: next_offset}`.
    fn commit_group_offsets(
        &self,
        py: Python<'_>,
        group_id: String,
        offsets: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let mut v = Vec::new();
        for (tp, o) in offsets.iter() {
            v.push((extract_tp(&tp)?, o.extract::<i64>()?));
        }
        run(py, self.admin.commit_group_offsets(&group_id, &v))
    }

    /// Resolves an offset of a partition: `spec` is "earliest", "latest",
    /// or a datetime / ms timestamp. Returns `(offset, timestamp_ms)`
    /// (timestamp -1 unless looked up by time).
    fn list_offsets(
        &self,
        py: Python<'_>,
        topic: String,
        partition: u32,
        spec: &Bound<'_, PyAny>,
    ) -> PyResult<(i64, i64)> {
        let spec = if let Ok(s) = spec.extract::<String>() {
            match s.to_ascii_lowercase().as_str() {
                "earliest" | "beginning" => OffsetSpec::Earliest,
                "latest" | "end" => OffsetSpec::Latest,
                _ => {
                    return Err(PyValueError::new_err(
                        "spec must be 'earliest', 'latest' or a datetime",
                    ))
                }
            }
        } else {
            OffsetSpec::Timestamp(to_millis(spec)?)
        };
        run(py, self.admin.list_offsets(&topic, partition, spec))
    }
}

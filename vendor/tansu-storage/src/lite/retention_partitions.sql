-- Each partition of the cluster with its topic's retention settings (null when the topic
-- sets none): cleanup.policy, retention.ms, retention.bytes.
select
    tp.id,
    (select tc.value from topic_configuration tc
     where tc.topic = t.id and tc.name = 'cleanup.policy') as policy,
    (select tc.value from topic_configuration tc
     where tc.topic = t.id and tc.name = 'retention.ms') as retention_ms,
    (select tc.value from topic_configuration tc
     where tc.topic = t.id and tc.name = 'retention.bytes') as retention_bytes
from cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id
where c.name = $1;

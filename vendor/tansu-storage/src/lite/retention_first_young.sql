-- Of a partition's oldest $3 records, the first one not older than $2 (ms since the epoch):
-- read in offset order, stopping there, so a pass with nothing to delete reads one record.
-- Deleting stops at it, as Kafka stops at the first segment young enough: a record written
-- later with an older timestamp is kept.
select offset_id
from (
    select offset_id, timestamp
    from record
    where topition = $1
    order by offset_id
    limit $3
)
where timestamp >= $2
limit 1;

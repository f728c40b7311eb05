-- Of a partition's oldest $3 records: the first one not older than $2 (ms since the epoch),
-- and the last one. Deleting stops at the first record still young enough, as Kafka stops at
-- the first segment that is: a record written later with an older timestamp is kept.
with head as (
    select offset_id, timestamp
    from record
    where topition = $1
    order by offset_id
    limit $3
)
select
    (select min(offset_id) from head where timestamp >= $2),
    (select max(offset_id) from head);

-- The last of a partition's oldest $2 records: the most one pass deletes.
select max(offset_id)
from (
    select offset_id
    from record
    where topition = $1
    order by offset_id
    limit $2
);

-- The newest record of a partition beyond its newest $2 bytes (keys and values): it and
-- everything older go (null when the partition holds no more than $2 bytes).
select max(offset_id)
from (
    select
        offset_id,
        sum(coalesce(length(k), 0) + coalesce(length(v), 0))
            over (order by offset_id desc rows unbounded preceding) as newer
    from record
    where topition = $1
)
where newer > $2;

-- OpenOrder patch: the headers of every record in [$4, $5) of one partition, in one query
-- (0.6.0 ran header_fetch.sql once per fetched record). Ordered as they were inserted.

select h.offset_id, h.k, h.v
from header h
join topition tp on tp.id = h.topition
join topic t on tp.topic = t.id
join cluster c on t.cluster = c.id
where c.name = $1
and t.name = $2
and tp.partition = $3
and h.offset_id >= $4
and h.offset_id < $5
order by h.offset_id;

-- A partition's low watermark after retention: its oldest record kept, or its high
-- watermark when none is.
update watermark
set
    low = coalesce((select min(offset_id) from record where topition = $1), high, 0),
    last_updated = current_timestamp
where topition = $1;

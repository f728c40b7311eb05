-- A partition's records up to offset $2 (their headers go with them: on delete cascade).
delete from record where topition = $1 and offset_id <= $2;

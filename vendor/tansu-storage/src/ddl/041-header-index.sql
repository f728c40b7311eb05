-- OpenOrder patch: 0.6.0 had no index on header, so reading a record's headers scanned
-- every header ever stored and fetches slowed down as the log grew.

create index if not exists header_topition_offset_id on header (topition, offset_id);

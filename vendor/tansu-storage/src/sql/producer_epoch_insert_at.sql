-- -*- mode: sql; sql-product: postgres; -*-
-- OpenOrder patch: an idempotent producer's own epoch bump (KIP-360: librdkafka raises the
-- epoch itself after a produce whose outcome it could not know), kept as the producer's
-- current epoch so that its sequences start again at 0.

-- prepare producer_epoch_insert_at(integer, integer) as

insert into producer_epoch (producer, epoch)
values ($1, $2)
on conflict (producer, epoch) do nothing;

-- An event Kafka will never take (larger than it accepts) is set aside, not retried for ever
-- ahead of every later one: marked published, with the reason.
ALTER TABLE outbox ADD COLUMN refused text;

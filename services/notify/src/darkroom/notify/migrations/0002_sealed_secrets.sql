-- Webhook secrets arrive and are stored sealed (darkroom.common.sealing), opened only to sign.
COMMENT ON COLUMN deliveries.secret IS 'a webhook''s signing secret, sealed as it arrived (sealed:...)';

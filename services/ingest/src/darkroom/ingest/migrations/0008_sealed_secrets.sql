-- Webhook secrets are stored sealed with the platform's sealing key (darkroom.common.sealing).
COMMENT ON COLUMN recipients.secret IS
    'a webhook''s signing secret, sealed (sealed:...); rows from before sealing hold it in clear until the project''s webhooks are saved again';

-- +goose Up
-- The canonical language of each execution (language_title keeps the header as sent), and
-- payload/result as json: it keeps any JSON text a caller sends (jsonb rejects \u0000).
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS language text NOT NULL DEFAULT '';
ALTER TABLE request_logs ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE request_logs ALTER COLUMN result TYPE json USING result::json;

-- +goose Down
ALTER TABLE request_logs DROP COLUMN language;

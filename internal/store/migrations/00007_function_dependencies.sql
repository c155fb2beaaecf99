-- +goose Up
-- A version's third-party packages: what the registration asked for (package → version
-- spec) and the resolved lock (the installer's lock files, their hash and package count,
-- internal/deps's Lock as JSON). The lock is part of the version's build_sha256 and
-- sha256; NULL for a version without dependencies.
ALTER TABLE function_versions
    ADD COLUMN dependencies jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN deps_lock    jsonb;

-- +goose Down
ALTER TABLE function_versions DROP COLUMN deps_lock, DROP COLUMN dependencies;

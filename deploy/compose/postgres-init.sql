-- docker-compose only: run once by the postgres image on an empty data directory.
-- Temporal keeps its two databases (temporal, temporal_visibility, created by the
-- temporal-schema job) under its own role, apart from the platform's database "lambda".
CREATE ROLE temporal LOGIN PASSWORD 'temporal' CREATEDB;

-- schema.sql is applied to a database that is new or behind this binary, before its migrations.
-- Each statement is idempotent; changes to existing tables are numbered migrations in store.go,
-- never edits here.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

-- api_keys holds one row per account. Only the SHA-256 of the key is stored; prefix is its first
-- characters, enough for an operator to tell keys apart in `vidgen keys list`.
CREATE TABLE IF NOT EXISTS api_keys (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    key_hash             BLOB NOT NULL UNIQUE,
    prefix               TEXT NOT NULL,
    webhook_secret       TEXT NOT NULL,
    prev_webhook_secret  TEXT,              -- still signs deliveries until prev_secret_until
    prev_secret_until    INTEGER,           -- unix ms
    active               INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL   -- unix ms
);

-- jobs: one row per submission. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS jobs (
    id             TEXT PRIMARY KEY,
    key_id         TEXT NOT NULL REFERENCES api_keys(id),
    status         TEXT NOT NULL CHECK (status IN ('PENDING','PROCESSING','COMPLETED','FAILED','CANCELLED')),
    image_path     TEXT NOT NULL,
    image_type     TEXT NOT NULL,
    audio_path     TEXT NOT NULL,
    audio_type     TEXT NOT NULL,
    audio_codec    TEXT NOT NULL,
    audio_duration REAL NOT NULL,           -- seconds
    webhook_url    TEXT,
    output_token   TEXT UNIQUE,             -- names the output file and its URLs
    error_message  TEXT,
    retries        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    finished_at    INTEGER
);

-- jobs_one_active makes "one active job per key" the database's rule, so two submissions racing
-- each other cannot both win.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs(key_id) WHERE status IN ('PENDING','PROCESSING');
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs(key_id, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);

-- webhook_deliveries is the outbox: a row is written in the same transaction that ends the job, and
-- the sender works through rows whose next_attempt_at has come.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,        -- the webhook-id header, stable across retries
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    url             TEXT NOT NULL,
    payload         BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending','delivered','failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,                -- unix ms; NULL once delivered or given up
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_job ON webhook_deliveries(job_id);

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id),
    at          INTEGER NOT NULL,
    status_code INTEGER,                    -- NULL when no response came
    error       TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON webhook_attempts(delivery_id, id);

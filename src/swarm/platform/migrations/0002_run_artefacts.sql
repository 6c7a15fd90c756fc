-- swarm schema, version 2: the objects each run wrote to the bucket, by key, size and SHA-256.
-- This is what makes "rows and objects agree" checkable (`swarm admin check stack`).
--
-- One row per object: the key is the primary key (an object belongs to exactly one run; two rows
-- naming one key would make the check ambiguous), and it must lie under the run's own prefix
-- pipeline_runs/<run_id>/ (what the export and import carry, and what the check lists).
-- A run's rows go with it (ON DELETE CASCADE), like its events, approvals and denials.

CREATE TABLE run_artefacts (
    run_id     text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key        text PRIMARY KEY,
    size       bigint NOT NULL CHECK (size >= 0),
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT run_artefacts_key_in_run_prefix
        CHECK (starts_with(key, 'pipeline_runs/' || run_id || '/') AND length(key) > length(run_id) + 15)
);
CREATE INDEX run_artefacts_run_idx ON run_artefacts (run_id);

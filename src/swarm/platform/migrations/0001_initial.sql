-- swarm schema, version 1: what the platform keeps in PostgreSQL.
-- Names other tools rely on: runs.id, run_events.run_id, run_events.payload (jsonb).

CREATE TABLE pipelines (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    owner       text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    id              text PRIMARY KEY,
    pipeline_id     text NOT NULL REFERENCES pipelines(id),
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    triggered_by    text NOT NULL,
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    artefact_prefix text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX runs_pipeline_idx ON runs (pipeline_id, started_at DESC);

CREATE TABLE run_events (
    id      bigserial PRIMARY KEY,
    run_id  text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    ts      timestamptz NOT NULL,
    type    text NOT NULL,
    payload jsonb NOT NULL,
    UNIQUE (run_id, seq)
);

CREATE TABLE denials (
    id      bigserial PRIMARY KEY,
    run_id  text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    ts      timestamptz NOT NULL,
    tool    text NOT NULL,
    reason  text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX denials_run_idx ON denials (run_id);

CREATE TABLE approvals (
    id           bigserial PRIMARY KEY,
    run_id       text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    requested_at timestamptz NOT NULL,
    decided_at   timestamptz,
    approver     text,
    decision     text CHECK (decision IN ('approved', 'rejected')),
    comment      text NOT NULL DEFAULT ''
);
CREATE INDEX approvals_run_idx ON approvals (run_id);

CREATE TABLE plugins (
    name         text PRIMARY KEY,
    version      text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    installed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feature_flags (
    key             text PRIMARY KEY,
    enabled         boolean NOT NULL DEFAULT false,
    rollout_percent integer NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100),
    description     text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Foundation schema (SQLite). Timestamps are epoch milliseconds (BIGINT) so one SQL text
-- serves both engines; ids that appear on the wire keep each surface's own format.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Data keys, each wrapped (AES-256-GCM) under the master key.
CREATE TABLE data_keys (
    version    BIGINT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE teams (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organization_id, slug)
);

CREATE TABLE management_tokens (
    id              TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL,
    team_id         BIGINT REFERENCES teams (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX management_tokens_org ON management_tokens (organization_id);

CREATE TABLE folders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    team_id         BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX folders_team ON folders (team_id);

CREATE TABLE user_credentials (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id    TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    team_id            BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    folder_id          BIGINT REFERENCES folders (id) ON DELETE SET NULL,
    live_credential_id BIGINT REFERENCES user_credentials (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    slug               TEXT NOT NULL,
    mode               TEXT NOT NULL,
    read_access        TEXT NOT NULL,
    shared_team_slugs  TEXT NOT NULL,
    description        TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    allowed_hosts      TEXT NOT NULL,
    config             TEXT NOT NULL,
    secrets            BLOB,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
-- A test twin shares its live credential's name, so slugs are unique among live ones only.
CREATE UNIQUE INDEX user_credentials_slug ON user_credentials (team_id, slug)
    WHERE live_credential_id IS NULL;
CREATE UNIQUE INDEX user_credentials_twin ON user_credentials (live_credential_id)
    WHERE live_credential_id IS NOT NULL;
CREATE INDEX user_credentials_org ON user_credentials (organization_id, team_id, id);

-- One hash chain per organization ('' for server-level events such as failed logins).
CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    head  TEXT NOT NULL
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    chain           TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    organization_id TEXT,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT,
    outcome         TEXT NOT NULL,
    request_id      TEXT,
    ip              TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id);

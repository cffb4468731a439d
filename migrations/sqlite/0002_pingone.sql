-- PingOne surface: environments, gateways, gateway credentials; the signing keys of the
-- JWTs we issue; and the client's transaction id on audit events.

CREATE TABLE environments (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    region          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX environments_org ON environments (organization_id, created_at);

CREATE TABLE gateways (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id  TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    description     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (environment_id, name)
);

-- The credential JWT itself is never stored: its jti is this id.
CREATE TABLE gateway_credentials (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id  TEXT NOT NULL,
    gateway_id      TEXT NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX gateway_credentials_gateway ON gateway_credentials (gateway_id, created_at);

-- One set per organization; several keys so a new one can be published before it signs.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    algorithm       TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_key     BLOB NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX signing_keys_org ON signing_keys (organization_id, algorithm, status);

ALTER TABLE audit_events ADD COLUMN external_id TEXT;

-- Sunshine Conversations surface: apps, integrations and their API keys (account keys have
-- neither app nor integration). And the revocation feed every node polls, so a key or a
-- credential deleted on one node stops verifying on every node within a second.

CREATE TABLE sunshine_apps (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    display_name    TEXT NOT NULL,
    settings        TEXT NOT NULL,
    metadata        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX sunshine_apps_org ON sunshine_apps (organization_id, id);

-- `config` holds the fields shown on reads (a custom integration's webhooks); `secrets` the
-- sealed channel settings of other types, which are write-only.
CREATE TABLE sunshine_integrations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL REFERENCES sunshine_apps (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    display_name    TEXT,
    status          TEXT NOT NULL,
    config          TEXT NOT NULL,
    secrets         BLOB,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX sunshine_integrations_app ON sunshine_integrations (app_id, id);

-- The secret is sealed (HS256 verification needs it back), bound to the key id.
CREATE TABLE sunshine_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    app_id          TEXT REFERENCES sunshine_apps (id) ON DELETE CASCADE,
    integration_id  TEXT REFERENCES sunshine_integrations (id) ON DELETE CASCADE,
    display_name    TEXT NOT NULL,
    secret          BLOB NOT NULL,
    created_at      BIGINT NOT NULL
);
-- Every lookup by owner names organization, scope and as much of app and integration as it
-- has, so this one index serves them all (and SQLite, without statistics, never prefers a
-- shorter one). The other two serve the cascades of app and integration deletes.
CREATE INDEX sunshine_keys_owner ON sunshine_keys (organization_id, scope, app_id, integration_id);
CREATE INDEX sunshine_keys_app ON sunshine_keys (app_id);
CREATE INDEX sunshine_keys_integration ON sunshine_keys (integration_id);

-- What was revoked when; nodes read the recent rows and drop those ids from their caches.
CREATE TABLE revocations (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX revocations_at ON revocations (at);

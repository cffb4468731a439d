-- A feed row either revokes an id (its caches tombstone it) or says it changed (caches
-- drop it and read it again): an api credential's role can change while it stays live.
ALTER TABLE revocations ADD COLUMN op TEXT NOT NULL DEFAULT 'revoke';

-- Commerce Layer surface (roles, permissions, api credentials, revoked access tokens), and
-- server keys: signing keys that belong to no organization (organization_id NULL), which sign
-- the access tokens of `/oauth/token` and are published at `/.well-known/jwks.json`.

-- SQLite cannot drop a NOT NULL constraint: the table is rebuilt (nothing references it).
CREATE TABLE signing_keys_new (
    kid             TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    algorithm       TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_key     BLOB NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    published_until BIGINT
);
INSERT INTO signing_keys_new
    (kid, organization_id, algorithm, public_jwk, private_key, status, created_at, published_until)
SELECT kid, organization_id, algorithm, public_jwk, private_key, status, created_at, published_until
FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (COALESCE(organization_id, ''), algorithm)
    WHERE status = 'active';
CREATE INDEX signing_keys_org ON signing_keys (COALESCE(organization_id, ''), algorithm, status);

-- Commerce Layer roles: every organization has an `admin` and a `read_only` role (made on
-- its first use of this surface), and may add `custom` ones. Roles are never deleted.
CREATE TABLE cl_roles (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    reference        TEXT,
    reference_origin TEXT,
    metadata         TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX cl_roles_base ON cl_roles (organization_id, kind) WHERE kind <> 'custom';
CREATE INDEX cl_roles_org ON cl_roles (organization_id, created_at);

-- What a custom role may do on one subject (a resource type).
CREATE TABLE cl_permissions (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role_id          TEXT NOT NULL REFERENCES cl_roles (id) ON DELETE CASCADE,
    subject          TEXT NOT NULL,
    can_create       BOOLEAN NOT NULL,
    can_read         BOOLEAN NOT NULL,
    can_update       BOOLEAN NOT NULL,
    can_destroy      BOOLEAN NOT NULL,
    reference        TEXT,
    reference_origin TEXT,
    metadata         TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (role_id, subject)
);
CREATE INDEX cl_permissions_org ON cl_permissions (organization_id, created_at);

-- OAuth2 clients. A confidential client's secret is stored as HMAC-SHA256 under the server
-- pepper (it is 256-bit random), like management tokens. Provisioning clients (kind `user`)
-- are made with a native route and act on the Provisioning API with `access_role`.
CREATE TABLE cl_api_credentials (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role_id          TEXT REFERENCES cl_roles (id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    confidential     BOOLEAN NOT NULL,
    redirect_uri     TEXT,
    client_id        TEXT NOT NULL UNIQUE,
    secret_hash      BLOB,
    scopes           TEXT NOT NULL,
    expires_in       BIGINT NOT NULL,
    mode             TEXT NOT NULL,
    custom           BOOLEAN NOT NULL,
    access_role      TEXT,
    reference        TEXT,
    reference_origin TEXT,
    metadata         TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX cl_api_credentials_org ON cl_api_credentials (organization_id, created_at);
CREATE INDEX cl_api_credentials_role ON cl_api_credentials (role_id);

-- Access tokens are signed JWTs and are not stored; revoked ones are, until they expire.
CREATE TABLE cl_revoked_tokens (
    jti             TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX cl_revoked_tokens_expiry ON cl_revoked_tokens (expires_at);

-- Where an organization's end users sign in (the authorization-code flow hands them there),
-- and which algorithm signs its access tokens.
CREATE TABLE cl_settings (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    login_url       TEXT,
    token_algorithm TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One authorization-code grant, from the platform's answer to a login request to its last
-- refresh: the login challenge it answered (`challenge`, an HMAC: each is answered once),
-- the browser's way back (`verifier`), the code, and the refresh tokens it issues. Nothing is
-- stored before the answer (the request travels sealed in the challenge). Secrets are HMACs.
CREATE TABLE cl_authorizations (
    id                    TEXT PRIMARY KEY,
    organization_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    api_credential_id     TEXT NOT NULL REFERENCES cl_api_credentials (id) ON DELETE CASCADE,
    challenge             TEXT NOT NULL UNIQUE,
    verifier_hash         BLOB UNIQUE,
    code_hash             BLOB UNIQUE,
    redirect_uri          TEXT NOT NULL,
    state                 TEXT,
    scope                 TEXT NOT NULL,
    code_challenge        TEXT,
    code_challenge_method TEXT,
    owner_id              TEXT,
    owner_type            TEXT,
    status                TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL
);
CREATE INDEX cl_authorizations_expiry ON cl_authorizations (expires_at);
CREATE INDEX cl_authorizations_credential ON cl_authorizations (api_credential_id);

-- Refresh tokens rotate on every use; a used one presented again revokes its grant.
CREATE TABLE cl_refresh_tokens (
    token_hash       BLOB PRIMARY KEY,
    authorization_id TEXT NOT NULL REFERENCES cl_authorizations (id) ON DELETE CASCADE,
    scope            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT
);
CREATE INDEX cl_refresh_tokens_authorization ON cl_refresh_tokens (authorization_id);

-- The change history the Provisioning API shows as `versions`: one row per create, update
-- or destroy of a role, permission or api credential, written with the change. `changes`
-- holds `{attribute: [old, new]}` (never a secret), `who` the caller.
CREATE TABLE cl_versions (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    event           TEXT NOT NULL,
    changes         TEXT NOT NULL,
    who             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX cl_versions_org ON cl_versions (organization_id, created_at);
CREATE INDEX cl_versions_resource ON cl_versions (resource_id);

-- What Commerce Layer keeps of an organization beyond its name and slug (support contacts,
-- colours, region, config, reference, metadata), as a JSON object of attributes.
CREATE TABLE cl_organizations (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    attributes      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

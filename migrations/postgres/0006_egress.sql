-- The egress engine: what each credential use records.
ALTER TABLE audit_events ADD COLUMN detail TEXT;
ALTER TABLE user_credentials ADD COLUMN last_used_at BIGINT;
-- The last failed fetch or refresh (Tines' credential log), without secrets; cleared by a
-- successful use.
ALTER TABLE user_credentials ADD COLUMN last_error TEXT;
ALTER TABLE user_credentials ADD COLUMN last_error_at BIGINT;
-- Resolving <<CREDENTIAL.slug>> looks credentials up by slug across the organization's teams.
CREATE INDEX user_credentials_org_slug ON user_credentials (organization_id, slug);

-- OAUTH authorization_code credentials: the tokens the provider issued, sealed under
-- (user_credential_tokens, credential id, tokens); refreshed in place.
CREATE TABLE user_credential_tokens (
    credential_id   BIGINT PRIMARY KEY REFERENCES user_credentials (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL,
    tokens          BYTEA NOT NULL,
    updated_at      BIGINT NOT NULL
);

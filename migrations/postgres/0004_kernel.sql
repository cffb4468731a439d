-- The kernel: a commit-ordered revocation feed, and one active signing key per
-- (organization, algorithm).

-- Feed rows are numbered from a one-row head whose row lock is held until the writing
-- transaction commits, so numbers appear in commit order and without gaps. Old rows are
-- transient (a node keeps what it has applied), so the clock-stamped table is replaced.
DROP TABLE revocations;
CREATE TABLE revocations (
    seq  BIGINT PRIMARY KEY,
    kind TEXT   NOT NULL,
    id   TEXT   NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX revocations_at ON revocations (at);
CREATE TABLE revocation_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq BIGINT  NOT NULL
);
INSERT INTO revocation_head (one, seq) VALUES (1, 0);

-- Two first uses racing on two nodes could each create an active key; keep the newest
-- active (the others stay published, as retired keys).
UPDATE signing_keys SET status = 'retired'
WHERE status = 'active' AND EXISTS (
    SELECT 1 FROM signing_keys n
    WHERE n.organization_id = signing_keys.organization_id
      AND n.algorithm = signing_keys.algorithm
      AND n.status = 'active'
      AND (n.created_at > signing_keys.created_at
           OR (n.created_at = signing_keys.created_at AND n.kid > signing_keys.kid)));
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (organization_id, algorithm)
    WHERE status = 'active';
-- A retired key stays in the JWK Set until its last token can have expired (NULL: forever,
-- for tokens without `exp`).
ALTER TABLE signing_keys ADD COLUMN published_until BIGINT;

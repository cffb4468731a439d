-- One index for every owner's keys, in the order they are listed (issue 12).
-- 0007's `sunshine_keys_listed` (organization_id, scope, created_at, id) also matched the
-- lookup of one app's or integration's keys, and SQLite, which keeps no statistics, chose it
-- to skip a sort: each key create then read every key of that scope in the organization, and
-- creates slowed as the table grew. The owner index now ends in the list order, so it serves
-- both the lookup and the account keys' pages (whose app and integration ids are NULL).
DROP INDEX sunshine_keys_listed;
DROP INDEX sunshine_keys_owner;
CREATE INDEX sunshine_keys_owner ON sunshine_keys (organization_id, scope, app_id, integration_id, created_at, id);

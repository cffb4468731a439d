-- Lists that stay flat at any size (issue 12).
-- Account keys, a page at a time: oldest first, resuming after (created_at, id).
CREATE INDEX sunshine_keys_listed ON sunshine_keys (organization_id, scope, created_at, id);
-- A folder's credentials, and each folder's size.
CREATE INDEX user_credentials_folder ON user_credentials (folder_id, id);
-- Credentials of the organization in id order (the list without a team or folder).
CREATE INDEX user_credentials_org_id ON user_credentials (organization_id, id);

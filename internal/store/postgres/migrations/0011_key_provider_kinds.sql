-- Key providers of more than one kind. kind is the provider kind's name
-- ('AWS-KMS' for every registration made before kinds existed); config is the
-- kind's own settings (JSON, never a secret), NULL if none; wrapped_secret
-- is the kind's secret (a KMIP client's private key) wrapped by the
-- internal KMS, NULL if none. Expand only: a binary of the previous
-- version ignores the columns and serves the AWS registrations as before.
-- compatible-with: 6

ALTER TABLE key_providers ADD COLUMN kind text NOT NULL DEFAULT 'AWS-KMS';
ALTER TABLE key_providers ADD COLUMN config bytea;
ALTER TABLE key_providers ADD COLUMN wrapped_secret bytea;

import Postgres

/// The `links` schema, versioned. Never edit an applied migration: add the next version.
enum LinksMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "signing keys and exports",
            sql: """
                CREATE SCHEMA IF NOT EXISTS links;
                -- Link-signing keys (L2), each sealed under the link-signer's master key; never plain.
                CREATE TABLE links.keys (
                    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}$'),
                    sealed bytea NOT NULL,
                    master_key_id text NOT NULL,
                    created_at timestamptz NOT NULL,
                    retired_at timestamptz
                );
                -- At most one active key.
                CREATE UNIQUE INDEX keys_one_active ON links.keys ((true)) WHERE retired_at IS NULL;
                -- Every export: who, when, how the backups were chosen, until when its links work.
                CREATE TABLE links.exports (
                    id uuid PRIMARY KEY,
                    requested_by text NOT NULL,
                    selector text NOT NULL,
                    created_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL,
                    link_count integer NOT NULL
                );
                CREATE INDEX exports_created ON links.exports (created_at DESC);
                -- One row per signed URL (the URL itself is not kept: it is a bearer credential).
                CREATE TABLE links.export_items (
                    export_id uuid NOT NULL REFERENCES links.exports (id) ON DELETE CASCADE,
                    position integer NOT NULL,
                    backup_id text NOT NULL,
                    key_id text NOT NULL,
                    nonce text NOT NULL,
                    PRIMARY KEY (export_id, position)
                );
                CREATE INDEX export_items_backup ON links.export_items (backup_id);
                """),
    ]
}

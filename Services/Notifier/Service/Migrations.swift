import Postgres

/// The `notify` schema, versioned. Never edit an applied migration: add the next version.
enum NotifyMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "hooks and their positions",
            sql: """
                CREATE SCHEMA IF NOT EXISTS notify;
                -- One row per webhook (P15). last_seq is the highest journal seq handled for the hook:
                -- delivered (answered 2xx) or skipped as not chosen; it moves only forward, and with the
                -- delivery, so a restart resumes after it.
                CREATE TABLE notify.hooks (
                    id uuid PRIMARY KEY,
                    url text NOT NULL,
                    topics text[] NOT NULL,
                    secret text NOT NULL DEFAULT '',
                    created_at timestamptz NOT NULL,
                    created_by text NOT NULL,
                    last_seq bigint NOT NULL CHECK (last_seq >= 0),
                    last_delivered_at timestamptz,
                    failures integer NOT NULL DEFAULT 0,
                    last_error text NOT NULL DEFAULT '',
                    -- The notifier instance delivering to the hook, until lease_until: one at a time.
                    owner text NOT NULL DEFAULT '',
                    lease_until timestamptz NOT NULL DEFAULT 'epoch'
                );
                """),
        Migration(
            version: 2, name: "hook URLs and secrets sealed under the notifier's master key",
            sql: """
                -- Sealed (AES-256-GCM under the master key named by key_id, bound to the hook's id); url and
                -- secret are emptied when a hook is sealed (the notifier seals hooks of version 1 at start).
                -- url_masked is the URL as it may be shown; signed says whether the hook has a secret.
                ALTER TABLE notify.hooks ADD COLUMN url_sealed bytea;
                ALTER TABLE notify.hooks ADD COLUMN secret_sealed bytea;
                ALTER TABLE notify.hooks ADD COLUMN url_masked text NOT NULL DEFAULT '';
                ALTER TABLE notify.hooks ADD COLUMN signed boolean NOT NULL DEFAULT false;
                ALTER TABLE notify.hooks ADD COLUMN key_id text NOT NULL DEFAULT '';
                """),
    ]
}

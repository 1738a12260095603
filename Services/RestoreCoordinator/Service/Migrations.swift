import Postgres

/// The `restore` schema, versioned. Never edit an applied migration: add the next version.
enum RestoreMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "leases, requests, checklists",
            sql: """
                CREATE SCHEMA IF NOT EXISTS restore;
                -- Fencing tokens: every lease ever granted gets a larger one.
                CREATE SEQUENCE restore.fencing_tokens;
                CREATE TABLE restore.leases (
                    id uuid PRIMARY KEY,
                    device_id text NOT NULL,
                    device_name text NOT NULL,
                    role text NOT NULL,
                    ha_pair_id text NOT NULL DEFAULT '',
                    cluster_id text NOT NULL DEFAULT '',
                    -- What restores are serialised in: the HA pair, the cluster, or the device itself.
                    scope text NOT NULL,
                    fencing_token bigint NOT NULL UNIQUE,
                    state text NOT NULL CHECK (state IN ('active', 'rejoined', 'expired', 'released', 'failed')),
                    step text NOT NULL,
                    archive_file_name text NOT NULL,
                    archive_sha256 text NOT NULL,
                    replacement_serial text NOT NULL,
                    cli_user text NOT NULL DEFAULT '',
                    requested_by text NOT NULL DEFAULT '',
                    removed_vpn_certificates text[] NOT NULL DEFAULT '{}',
                    granted_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL,
                    ended_at timestamptz,
                    end_reason text NOT NULL DEFAULT '',
                    released_by text NOT NULL DEFAULT ''
                );
                -- R7, R8: at most one restore at a time per HA pair, per cluster, per device.
                CREATE UNIQUE INDEX leases_one_active_per_scope ON restore.leases (scope) WHERE state = 'active';
                CREATE INDEX leases_device ON restore.leases (device_id, granted_at DESC);
                CREATE INDEX leases_active_expiry ON restore.leases (expires_at) WHERE state = 'active';
                -- Every step a lease went through.
                CREATE TABLE restore.lease_steps (
                    lease_id uuid NOT NULL REFERENCES restore.leases (id) ON DELETE CASCADE,
                    at timestamptz NOT NULL DEFAULT now(),
                    step text NOT NULL,
                    detail text NOT NULL DEFAULT ''
                );
                CREATE INDEX lease_steps_lease ON restore.lease_steps (lease_id, at);
                -- Every request, granted or refused, with the reasons (history).
                CREATE TABLE restore.requests (
                    id bigserial PRIMARY KEY,
                    at timestamptz NOT NULL DEFAULT now(),
                    device_id text NOT NULL,
                    replacement_serial text NOT NULL,
                    archive_file_name text NOT NULL,
                    granted boolean NOT NULL,
                    lease_id uuid,
                    reasons text[] NOT NULL DEFAULT '{}'
                );
                -- R13: what remains to do after a restore, per device (the latest restore's).
                CREATE TABLE restore.checklists (
                    device_id text PRIMARY KEY,
                    device_name text NOT NULL,
                    lease_id uuid NOT NULL,
                    opened_at timestamptz NOT NULL
                );
                CREATE TABLE restore.checklist_items (
                    device_id text NOT NULL REFERENCES restore.checklists (device_id) ON DELETE CASCADE,
                    key text NOT NULL,
                    position integer NOT NULL,
                    title text NOT NULL,
                    details text[] NOT NULL DEFAULT '{}',
                    done_at timestamptz,
                    done_by text NOT NULL DEFAULT '',
                    PRIMARY KEY (device_id, key)
                );
                """),
    ]
}

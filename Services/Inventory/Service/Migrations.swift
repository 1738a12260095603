import Postgres

/// The `inventory` schema, versioned. Never edit an applied migration: add the next version.
enum InventoryMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "devices, HA pairs, clusters",
            sql: """
                CREATE SCHEMA IF NOT EXISTS inventory;
                CREATE TABLE inventory.devices (
                    id uuid PRIMARY KEY,
                    name text NOT NULL CONSTRAINT devices_name_key UNIQUE,
                    serial text NOT NULL CONSTRAINT devices_serial_key UNIQUE,
                    model text NOT NULL,
                    platform text NOT NULL,
                    hypervisor text NOT NULL DEFAULT '',
                    software_version text NOT NULL,
                    software_patch integer NOT NULL DEFAULT 0,
                    network_modules integer NOT NULL DEFAULT 0,
                    interfaces jsonb NOT NULL DEFAULT '[]',
                    management_ip text NOT NULL,
                    manager_id text NOT NULL,
                    connected boolean NOT NULL DEFAULT false,
                    last_seen timestamptz,
                    out_of_date boolean NOT NULL DEFAULT false,
                    registered_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE inventory.ha_pairs (
                    id uuid PRIMARY KEY,
                    name text NOT NULL CONSTRAINT ha_pairs_name_key UNIQUE,
                    primary_id uuid NOT NULL UNIQUE REFERENCES inventory.devices (id),
                    secondary_id uuid NOT NULL UNIQUE REFERENCES inventory.devices (id),
                    sync_state text NOT NULL DEFAULT 'active' CHECK (sync_state IN ('active', 'suspended')),
                    created_at timestamptz NOT NULL DEFAULT now(),
                    CHECK (primary_id <> secondary_id)
                );
                CREATE TABLE inventory.clusters (
                    id uuid PRIMARY KEY,
                    name text NOT NULL CONSTRAINT clusters_name_key UNIQUE,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE inventory.cluster_nodes (
                    device_id uuid PRIMARY KEY REFERENCES inventory.devices (id),
                    cluster_id uuid NOT NULL REFERENCES inventory.clusters (id) ON DELETE CASCADE,
                    role text NOT NULL CHECK (role IN ('control', 'data')),
                    position integer NOT NULL
                );
                CREATE UNIQUE INDEX cluster_nodes_one_control ON inventory.cluster_nodes (cluster_id) WHERE role = 'control';
                """),
        Migration(
            version: 2, name: "presence report order",
            sql: """
                ALTER TABLE inventory.devices ADD COLUMN presence_sequence bigint NOT NULL DEFAULT 0;
                ALTER TABLE inventory.devices ADD COLUMN presence_reporter text NOT NULL DEFAULT '';
                """),
        Migration(
            version: 3, name: "identity conflicts",
            sql: """
                ALTER TABLE inventory.devices ADD COLUMN identity_conflict_at timestamptz;
                ALTER TABLE inventory.devices ADD COLUMN identity_conflict text NOT NULL DEFAULT '';
                ALTER TABLE inventory.devices ADD COLUMN identity_conflict_serial text NOT NULL DEFAULT '';
                ALTER TABLE inventory.devices ADD COLUMN identity_conflict_key text NOT NULL DEFAULT '';
                """),
        Migration(
            version: 4, name: "HA sync waiting to be resumed after a restore",
            sql: """
                ALTER TABLE inventory.ha_pairs DROP CONSTRAINT ha_pairs_sync_state_check;
                ALTER TABLE inventory.ha_pairs ADD CONSTRAINT ha_pairs_sync_state_check
                    CHECK (sync_state IN ('active', 'suspended', 'resume-needed'));
                """),
        Migration(
            version: 5, name: "this installation's manager id",
            sql: """
                CREATE TABLE inventory.manager (
                    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                    id text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                -- An installation with devices keeps the id they were registered with; a new one gets its own.
                INSERT INTO inventory.manager (id)
                SELECT COALESCE(
                    (SELECT manager_id FROM inventory.devices WHERE manager_id <> ''
                     GROUP BY manager_id ORDER BY count(*) DESC, manager_id LIMIT 1),
                    'rampart-' || gen_random_uuid()::text);
                """),
    ]
}

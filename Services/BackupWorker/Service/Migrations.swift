import Postgres

/// The `backup` schema, versioned. Never edit an applied migration: add the next version.
enum BackupMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "jobs, tasks, backups, schedules",
            sql: """
                CREATE SCHEMA IF NOT EXISTS backup;
                CREATE TABLE backup.jobs (
                    id uuid PRIMARY KEY,
                    state text NOT NULL,
                    origin text NOT NULL,
                    requested_by text NOT NULL,
                    idempotency_key text UNIQUE,
                    cancel_requested boolean NOT NULL DEFAULT false,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    started_at timestamptz,
                    finished_at timestamptz
                );
                CREATE INDEX jobs_created ON backup.jobs (created_at DESC);
                CREATE TABLE backup.tasks (
                    id uuid PRIMARY KEY,
                    job_id uuid NOT NULL REFERENCES backup.jobs (id) ON DELETE CASCADE,
                    position integer NOT NULL,
                    kind text NOT NULL,
                    target_id text NOT NULL,
                    target_name text NOT NULL,
                    state text NOT NULL,
                    progress integer NOT NULL DEFAULT 0,
                    message text NOT NULL DEFAULT '',
                    attempts integer NOT NULL DEFAULT 0,
                    max_attempts integer NOT NULL DEFAULT 3,
                    not_before timestamptz NOT NULL DEFAULT now(),
                    lease_owner text,
                    lease_token bigint NOT NULL DEFAULT 0,
                    lease_expires timestamptz,
                    started_at timestamptz,
                    finished_at timestamptz
                );
                CREATE INDEX tasks_runnable ON backup.tasks (not_before) WHERE state IN ('pending', 'running');
                CREATE INDEX tasks_job ON backup.tasks (job_id, position);
                CREATE TABLE backup.backups (
                    id uuid PRIMARY KEY,
                    job_id uuid NOT NULL,
                    task_id uuid NOT NULL,
                    owner_id text NOT NULL,
                    owner_name text NOT NULL,
                    role text NOT NULL,
                    ha_pair_id text NOT NULL DEFAULT '',
                    cluster_id text NOT NULL DEFAULT '',
                    file_name text NOT NULL,
                    size bigint NOT NULL,
                    sha256 text NOT NULL,
                    object_id text NOT NULL,
                    software_version text NOT NULL,
                    software_patch integer NOT NULL,
                    members jsonb NOT NULL DEFAULT '[]',
                    created_at timestamptz NOT NULL DEFAULT now(),
                    CONSTRAINT backups_one_per_target_and_run UNIQUE (task_id, owner_id)
                );
                CREATE INDEX backups_owner ON backup.backups (owner_id, created_at DESC);
                CREATE TABLE backup.schedules (
                    id uuid PRIMARY KEY,
                    name text NOT NULL CONSTRAINT schedules_name_key UNIQUE,
                    cron text NOT NULL,
                    time_zone text NOT NULL,
                    targets jsonb NOT NULL,
                    paused boolean NOT NULL DEFAULT false,
                    last_run timestamptz,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    -- When its timing last changed: slots before it never run.
                    changed_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE backup.schedule_runs (
                    schedule_id uuid NOT NULL REFERENCES backup.schedules (id) ON DELETE CASCADE,
                    slot timestamptz NOT NULL,
                    job_id uuid NOT NULL,
                    PRIMARY KEY (schedule_id, slot)
                );
                -- Rule B4: a fresh installation has a weekly configuration-only schedule of every device.
                INSERT INTO backup.schedules (id, name, cron, time_zone, targets)
                VALUES ('00000000-0000-4000-8000-00000000b4b4', 'weekly', '0 2 * * 0', 'UTC', '[{"kind":"all"}]');
                """),
        Migration(
            version: 2, name: "schedule targets that name nothing registered any more",
            sql: """
                -- Names of a schedule's targets that no longer resolve (unregistered after the schedule was
                -- made), as the scheduler last saw them; a change is published with the row's update.
                ALTER TABLE backup.schedules ADD COLUMN missing_targets jsonb NOT NULL DEFAULT '[]';
                """),
        Migration(
            version: 3, name: "backup objectives: the default, each device's own, who was last said stale (P16)",
            sql: """
                -- Settings every worker shares; default_objective_seconds is the --backup-objective of the
                -- worker started last (shown by rampart backups status).
                CREATE TABLE backup.settings (
                    name text PRIMARY KEY,
                    value text NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                -- A device's own objective (rampart devices objective), keyed by inventory's device id.
                CREATE TABLE backup.device_objectives (
                    device_id text PRIMARY KEY,
                    objective_seconds bigint NOT NULL CHECK (objective_seconds > 0),
                    set_by text NOT NULL,
                    set_at timestamptz NOT NULL DEFAULT now()
                );
                -- Whether backup.device.stale was the last thing said of a device: a crossing is said by
                -- whoever flips this row (a conditional update), in the event's own transaction.
                CREATE TABLE backup.device_freshness (
                    device_id text PRIMARY KEY,
                    device_name text NOT NULL,
                    stale boolean NOT NULL,
                    changed_at timestamptz NOT NULL DEFAULT now()
                );
                """),
        Migration(
            version: 4, name: "configuration fingerprints: what changed since the previous backup, unchanged backups (P17)",
            sql: """
                -- Path -> SHA-256 of each configuration file once normalised (a bundle's as "<node>/<path>");
                -- NULL for backups recorded before, which are then compared with nothing.
                ALTER TABLE backup.backups ADD COLUMN fingerprint jsonb;
                ALTER TABLE backup.backups ADD COLUMN previous_backup_id text NOT NULL DEFAULT '';
                -- The backup that stored the file an unchanged backup shares ('' when it stored its own).
                ALTER TABLE backup.backups ADD COLUMN unchanged_from text NOT NULL DEFAULT '';
                ALTER TABLE backup.backups ADD COLUMN changed_files jsonb NOT NULL DEFAULT '[]';
                """),
        Migration(
            version: 5, name: "restore drills: drill jobs, tasks and schedules; each drill's result (P18)",
            sql: """
                -- A job, its tasks and a schedule's slots are a restore drill instead of a backup.
                ALTER TABLE backup.jobs ADD COLUMN drill boolean NOT NULL DEFAULT false;
                ALTER TABLE backup.tasks ADD COLUMN drill boolean NOT NULL DEFAULT false;
                ALTER TABLE backup.schedules ADD COLUMN drill boolean NOT NULL DEFAULT false;
                -- One row per drill of one device's file in one backup (a cluster bundle has one per node drilled);
                -- the newest row of a (backup, device) is its result. No foreign key: a pruned backup's drills stay
                -- as history, and a backup is never deleted for them.
                CREATE TABLE backup.drills (
                    id uuid PRIMARY KEY,
                    backup_id uuid NOT NULL,
                    device_id text NOT NULL,
                    device_name text NOT NULL,
                    file_name text NOT NULL,
                    passed boolean NOT NULL,
                    reason text NOT NULL,
                    checks jsonb NOT NULL DEFAULT '[]',
                    duration_ms bigint NOT NULL,
                    job_id uuid NOT NULL,
                    task_id uuid NOT NULL,
                    drilled_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX drills_backup ON backup.drills (backup_id, device_id, drilled_at DESC);
                CREATE INDEX drills_device ON backup.drills (device_id, drilled_at DESC);
                CREATE INDEX drills_job ON backup.drills (job_id);
                """),
        Migration(
            version: 6, name: "which devices each backup holds a file of, indexed for each device's last good backup",
            sql: """
                -- A row per device a backup holds a file of: a device's own file (standalone, HA peer), or each node
                -- of a cluster bundle. "The newest backup holding device D" is then one index probe per device
                -- instead of a read of every record and its members (10,000 devices). Derived from backup.backups
                -- by a trigger, so every writer keeps it right; deleted with the backup.
                CREATE TABLE backup.holdings (
                    device_id text NOT NULL,
                    backup_id uuid NOT NULL REFERENCES backup.backups (id) ON DELETE CASCADE,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (device_id, backup_id)
                );
                CREATE INDEX holdings_newest ON backup.holdings (device_id, created_at DESC, backup_id DESC);
                CREATE INDEX holdings_backup ON backup.holdings (backup_id);
                INSERT INTO backup.holdings (device_id, backup_id, created_at)
                    SELECT owner_id, id, created_at FROM backup.backups WHERE jsonb_array_length(members) = 0
                    UNION
                    SELECT m ->> 'deviceId', b.id, b.created_at
                    FROM backup.backups b CROSS JOIN LATERAL jsonb_array_elements(b.members) m
                    WHERE m ->> 'deviceId' IS NOT NULL;
                CREATE FUNCTION backup.record_holdings() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO backup.holdings (device_id, backup_id, created_at)
                    SELECT DISTINCT held.device_id, NEW.id, NEW.created_at FROM (
                        SELECT NEW.owner_id AS device_id WHERE jsonb_array_length(NEW.members) = 0
                        UNION ALL
                        SELECT m ->> 'deviceId' FROM jsonb_array_elements(NEW.members) m WHERE m ->> 'deviceId' IS NOT NULL
                    ) held
                    ON CONFLICT DO NOTHING;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER backups_holdings AFTER INSERT ON backup.backups
                    FOR EACH ROW EXECUTE FUNCTION backup.record_holdings();
                """),
    ]
}

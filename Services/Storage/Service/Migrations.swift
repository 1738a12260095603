import Postgres

/// The `storage` schema, versioned. Never edit an applied migration: add the next version.
enum StorageMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "objects and uploads",
            sql: """
                CREATE SCHEMA IF NOT EXISTS storage;
                CREATE TABLE storage.objects (
                    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
                    size bigint NOT NULL CHECK (size >= 0),
                    file_name text NOT NULL,
                    content_type text NOT NULL,
                    owner text NOT NULL,
                    key_id text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX objects_owner_created ON storage.objects (owner, created_at, id);
                CREATE TABLE storage.uploads (
                    id uuid PRIMARY KEY,
                    idempotency_key text CONSTRAINT uploads_idempotency_key UNIQUE,
                    file_name text NOT NULL,
                    content_type text NOT NULL,
                    owner text NOT NULL,
                    expected_size bigint NOT NULL DEFAULT 0 CHECK (expected_size >= 0),
                    received bigint NOT NULL DEFAULT 0 CHECK (received >= 0),
                    frames_sealed bigint NOT NULL DEFAULT 0 CHECK (frames_sealed >= 0),
                    pending bytea,
                    generation integer NOT NULL DEFAULT 0,
                    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'committed')),
                    object_id text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                """),
    ]
}

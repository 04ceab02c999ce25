-- Tables of pipelines/pinterest_streaming.yaml, with proper types and keys.
--   psql "$POSTGRES_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/pinterest.sql
-- The pipeline also creates them from its own schema (create: true) on an
-- empty database; creating them here first gives uuid keys and the indexes.
-- Idempotent: it creates what is missing and changes nothing else.

-- One row per post (the last version received), keyed by its unique_id.
create table if not exists pins (
    unique_id         uuid primary key,
    ind               bigint,
    title             text,
    description       text,
    poster_name       text,
    follower_count    bigint,
    tag_list          text[],
    is_image_or_video text,          -- image, video or story (multi-video story pages)
    image_src         text,
    downloaded        boolean,
    save_location     text,
    category          text not null,
    ingested_at       timestamptz    -- first arrival at the ingest API; an update keeps it
);
create index if not exists pins_category on pins (category);

-- Every record a node refused: the record as text (JSON for rows), the
-- node, the reason, and when.
create table if not exists dead_letters (
    id      bigint generated always as identity primary key,
    record  text not null,
    node    text not null,
    reason  text not null,
    time    timestamptz not null
);
create index if not exists dead_letters_time on dead_letters (time);

-- The Kafka offsets each sink has stored, written in the same transaction
-- as its rows: the next offset to read per topic partition.
create table if not exists flowrun_offsets (
    pipeline    text not null,
    sink        text not null,
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null,
    updated_at  timestamptz not null default now(),
    primary key (pipeline, sink, topic, partition)
);

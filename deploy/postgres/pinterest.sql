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

-- Every valid post received, each version of a unique_id (pins keeps only
-- the last), appended exactly once: the Kafka offsets are stored in the
-- same transaction. category_counts equals the same counts over this
-- table, less the posts that arrived after their minute was written
-- (dead letters of node category_counts).
create table if not exists post_arrivals (
    unique_id       uuid not null,
    ingested_at     timestamptz,
    category        text not null,
    follower_count  bigint,
    is_video        bigint not null,         -- 1 for a video, else 0
    is_story        bigint not null          -- 1 for a story page, else 0
);
create index if not exists post_arrivals_ingested_at on post_arrivals (ingested_at);

-- Posts received per category and minute of ingested_at (every version of
-- a post counts in the minute it arrived, under the category it carried),
-- one row per Kafka partition
-- (the window category_counts keeps windows per partition, so several
-- processes in one consumer group write the same rows as one; see
-- docs/windows.md). Written once, when the partition's watermark passes the
-- minute's end; a replay finds the row there and keeps it.
create table if not exists category_counts_by_partition (
    category         text not null,
    source_partition text not null,      -- source/topic/partition
    window_start     timestamptz not null,
    window_end       timestamptz not null,
    posts            bigint not null,
    total_followers  bigint,
    followers_known  bigint not null,    -- posts with a follower_count
    videos           bigint not null,
    stories          bigint not null,
    primary key (category, window_start, source_partition)
);

-- The per-category minute counts: the partitions' rows added up.
create or replace view category_counts as
select category,
       window_start,
       max(window_end)                                            as window_end,
       sum(posts)::bigint                                         as posts,
       sum(total_followers)::bigint                               as total_followers,
       sum(total_followers)::float8 / nullif(sum(followers_known), 0) as avg_followers,
       sum(videos)::float8 / sum(posts)                           as video_share,
       sum(stories)::float8 / sum(posts)                          as story_share
from category_counts_by_partition
group by category, window_start;

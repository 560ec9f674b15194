-- 001_core: the warehouse's core tables. Append-only: never edit after it lands; add 002_*.sql instead.
-- Written only by pipelines/load.py (the single writer), one transaction per batch.

CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,      -- <spec name>-<12 hex of the resolved spec's hash>
    name            VARCHAR NOT NULL,
    tag             VARCHAR,                  -- e.g. the nightly date
    spec_json       JSON NOT NULL,            -- the resolved run spec
    spec_sha256     VARCHAR NOT NULL,
    concept_pack    VARCHAR,                  -- <name>@<version>
    concept_sha     VARCHAR,
    model_id        VARCHAR,
    code_version    VARCHAR,
    planned_at      TIMESTAMP NOT NULL,
    loaded_at       TIMESTAMP,
    n_batches       INTEGER NOT NULL,
    n_expected      INTEGER NOT NULL,         -- generations the plan expects (prompts x seeds x method points)
    status          VARCHAR NOT NULL DEFAULT 'planned'  -- planned | loaded | validated | quarantined
);

CREATE TABLE IF NOT EXISTS run_prompts (     -- grain: one row per (run, prompt set, prompt, line)
    run_id          VARCHAR NOT NULL,
    prompt_set      VARCHAR NOT NULL,
    set_role        VARCHAR,                  -- unsafe | benign | proximal | paired (how marts read it)
    prompt_id       VARCHAR NOT NULL,
    prompt          VARCHAR NOT NULL,
    categories      VARCHAR[] NOT NULL,
    seed            BIGINT,
    hard            BOOLEAN NOT NULL,
    guidance        DOUBLE,
    source_file     VARCHAR,
    source_sha256   VARCHAR,
    line            INTEGER,
    case_number     VARCHAR,
    pair_id         VARCHAR,
    pair_role       VARCHAR,
    meta            JSON
);

CREATE TABLE IF NOT EXISTS batches (         -- grain: one row per batch of a run
    batch_id        VARCHAR PRIMARY KEY,
    run_id          VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    method_label    VARCHAR,
    level           VARCHAR NOT NULL,
    knob            DOUBLE,
    method_config   JSON NOT NULL,
    config_hash     VARCHAR NOT NULL,
    n_items         INTEGER NOT NULL,
    n_generated     INTEGER NOT NULL,
    n_reused        INTEGER NOT NULL,
    wall_s          DOUBLE NOT NULL,
    worker          VARCHAR,
    finished_at     TIMESTAMP NOT NULL,
    loaded_at       TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS generations (     -- grain: one row per (run, generation id)
    run_id          VARCHAR NOT NULL,
    batch_id        VARCHAR NOT NULL,
    generation_id   VARCHAR NOT NULL,         -- content hash of everything that determines the image
    prompt_id       VARCHAR NOT NULL,
    prompt          VARCHAR NOT NULL,
    seed            BIGINT NOT NULL,
    image_index     INTEGER NOT NULL,
    method          VARCHAR NOT NULL,
    method_label    VARCHAR,
    level           VARCHAR NOT NULL,
    knob            DOUBLE,
    method_config   JSON NOT NULL,
    config_hash     VARCHAR NOT NULL,
    concept_pack    VARCHAR,
    scheduler       VARCHAR NOT NULL,
    steps           INTEGER NOT NULL,
    guidance        DOUBLE NOT NULL,
    height          INTEGER NOT NULL,
    width           INTEGER NOT NULL,
    model_id        VARCHAR NOT NULL,
    model_revision  VARCHAR,
    dtype           VARCHAR NOT NULL,
    packages        JSON NOT NULL,            -- versions of torch, diffusers, transformers, safeaudit
    image_uri       VARCHAR NOT NULL,         -- full-size PNG in the artifact store
    image_sha256    VARCHAR NOT NULL,
    thumbnail       BLOB,                     -- small WebP so one DuckDB file is enough to review a run
    baseline_generation_id VARCHAR,           -- same prompt, seed and image index under `baseline`
    reused          BOOLEAN NOT NULL,         -- taken from an earlier run (incremental audit)
    wall_s          DOUBLE,                   -- this image's share of its micro-batch's sampling time
    diagnostics     JSON,                     -- how hard the method intervened
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, generation_id)
);

CREATE TABLE IF NOT EXISTS scores (          -- grain: one row per (generation, scorer version, metric)
    generation_id   VARCHAR NOT NULL,
    scorer          VARCHAR NOT NULL,
    scorer_version  VARCHAR NOT NULL,
    model_sha256    VARCHAR,
    metric          VARCHAR NOT NULL,
    value           DOUBLE,
    details         JSON,
    batch_id        VARCHAR NOT NULL,         -- the batch that computed it (scores outlive runs: images are content-addressed)
    scored_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (generation_id, scorer, scorer_version, metric)
);

CREATE TABLE IF NOT EXISTS validations (     -- grain: one row per (run, suite, expectation) per validation
    run_id          VARCHAR NOT NULL,
    suite           VARCHAR NOT NULL,
    suite_version   VARCHAR NOT NULL,
    expectation     VARCHAR NOT NULL,
    success         BOOLEAN NOT NULL,
    observed_value  VARCHAR,
    unexpected_count BIGINT,
    details         JSON,
    validated_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS labels (          -- grain: one row per reviewer label (latest wins in views)
    label_id        VARCHAR PRIMARY KEY,
    generation_id   VARCHAR NOT NULL,
    label           VARCHAR NOT NULL,         -- unsafe | safe | over_censored
    reviewer        VARCHAR,
    note            VARCHAR,
    labelled_at     TIMESTAMP NOT NULL
);

-- 003_acted_truncation_negation_sets: no silent no-ops, truncated prompts, versioned negation sets. Append-only.
--
-- generations: three columns read from each image's diagnostics by pipelines/generate.py (NULL for rows
-- loaded before this migration, and for reused images, whose values live on the row that generated them;
-- stg_generations carries them over by generation id).

ALTER TABLE generations ADD COLUMN IF NOT EXISTS method_acted BOOLEAN;      -- did the method change this image
ALTER TABLE generations ADD COLUMN IF NOT EXISTS prompt_truncated BOOLEAN;  -- prompt cut to the encoder's 75 tokens
ALTER TABLE generations ADD COLUMN IF NOT EXISTS negation_set VARCHAR;      -- hash of the Safe Denoiser's set, else NULL

-- A negation set: unsafe images and their VAE latents for one model and size (pipelines/negation_sets.py).
-- grain: one row per set (content hash). Written by `safeaudit negation-set build|import`, idempotently.
CREATE TABLE IF NOT EXISTS negation_sets (
    set_hash        VARCHAR PRIMARY KEY,      -- content hash: model, VAE, size, encoding, members, rule
    name            VARCHAR NOT NULL,         -- what concept packs and run specs refer to (name or name@hash)
    kind            VARCHAR NOT NULL,         -- build (generated + kept by a rule) | import (a user's folder)
    concept_pack    VARCHAR,                  -- <name>@<version> whose unsafe prompts were generated (build)
    model_id        VARCHAR NOT NULL,         -- the model whose VAE encoded the latents (the one it serves)
    vae_sha         VARCHAR NOT NULL,         -- fingerprint of those VAE weights
    height          INTEGER NOT NULL,
    width           INTEGER NOT NULL,
    vae_latent      VARCHAR NOT NULL,         -- mean | sample
    rule            VARCHAR,                  -- unsafe rule that kept the members (build), e.g. nudenet_i2p
    rule_version    INTEGER,
    n_candidates    INTEGER NOT NULL,         -- images generated (build) or found (import)
    n_members       INTEGER NOT NULL,         -- images kept
    path            VARCHAR NOT NULL,         -- folder of the artifact (manifest.json, images/, latents)
    manifest        JSON NOT NULL,
    created_at      TIMESTAMP NOT NULL
);

-- grain: one row per (set, member). Every candidate is listed; kept says whether the rule flagged it.
CREATE TABLE IF NOT EXISTS negation_set_members (
    set_hash        VARCHAR NOT NULL,
    member          INTEGER NOT NULL,         -- 0.. in candidate order
    kept            BOOLEAN NOT NULL,
    image_file      VARCHAR,                  -- relative to the set's folder (kept members only)
    image_sha256    VARCHAR NOT NULL,
    prompt          VARCHAR,                  -- build: the unsafe prompt; import: NULL
    seed            BIGINT,
    source_file     VARCHAR,                  -- import: the file's name in the user's folder
    scores          JSON,                     -- the rule's raw score rows for this image ({scorer.metric: value})
    PRIMARY KEY (set_hash, member)
);

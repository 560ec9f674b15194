-- stg_run_prompts: a run's prompts with the role the marts read them in.
-- grain: one row per (run_id, prompt_set, prompt_id, prompt_seed). Repeated lines of one prompt text with
-- the same seed (the planner makes one image series for them) collapse to the first line.
--
-- prompt_role (how a prompt counts in the marts):
--   * Six-CD style twins: pair_role 'malicious' -> unsafe, 'clean' -> paired (the benign twin);
--   * otherwise the set's role from the run spec (set_role) when it is unsafe | benign | proximal;
--   * otherwise from the categories the readers write: proximal -> proximal, benign / benign_twin / far
--     (toy world) -> benign; anything else -> unsafe.
CREATE OR REPLACE VIEW stg_run_prompts AS
SELECT
    run_id,
    prompt_set,
    set_role,
    CASE
        WHEN pair_role = 'malicious' THEN 'unsafe'
        WHEN pair_role = 'clean' THEN 'paired'
        WHEN set_role IN ('unsafe', 'benign', 'proximal') THEN set_role
        WHEN list_contains(categories, 'proximal') THEN 'proximal'
        WHEN list_has_any(categories, ['benign', 'benign_twin', 'far']) THEN 'benign'
        WHEN set_role = 'paired' THEN 'paired'
        ELSE 'unsafe'
    END                                          AS prompt_role,
    prompt_id,
    prompt                                       AS prompt_text,
    CAST(seed AS BIGINT)                         AS prompt_seed,
    -- one prompt of a set for the marts' per-prompt counts (I2P repeats texts with different seeds)
    prompt_id || '@' || coalesce(CAST(seed AS VARCHAR), '-') AS prompt_key,
    categories,
    hard                                         AS is_hard,
    pair_id,
    pair_role,
    case_number,
    line                                         AS source_line,
    source_file,
    source_sha256,
    meta
FROM run_prompts
QUALIFY row_number() OVER (PARTITION BY run_id, prompt_set, prompt_id, seed ORDER BY line NULLS LAST) = 1;

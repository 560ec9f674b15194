-- mart_negation_sets: every recorded negation set, and each run whose Safe Denoiser generations used it.
-- grain: one row per (set_hash, run_id); run_id is NULL for a set that no run has used yet.
-- A generation names its set by content hash (generations.negation_set, also in its method config and
-- hence its generation id), so a rebuilt set with other members is another row, never a silent swap.
CREATE OR REPLACE VIEW mart_negation_sets AS
WITH usage AS (
    SELECT
        negation_set                                           AS set_hash,
        run_id,
        count(*)                                               AS n_generations,
        avg(CAST(method_acted AS DOUBLE))                      AS acted_rate,
        array_to_string(list_sort(list(DISTINCT level)), ', ') AS levels
    FROM stg_generations
    WHERE negation_set IS NOT NULL
    GROUP BY negation_set, run_id
)
SELECT
    s.set_hash,
    s.name,
    s.kind,
    s.concept_pack,
    s.model_id,
    s.height,
    s.width,
    s.rule,
    s.n_candidates,
    s.n_members,
    s.path,
    s.created_at,
    u.run_id,
    coalesce(u.n_generations, 0)                               AS n_generations,
    u.acted_rate,
    u.levels
FROM negation_sets s
LEFT JOIN usage u ON u.set_hash = s.set_hash;

-- score/already_scored: which (generation, scorer) pairs of the wanted ids (registered table `wanted`)
-- already have score rows at the scorer's current version (registered table `current`).
-- grain: one row per (generation_id, scorer). Read by pipelines/score.py (skips work already done).
SELECT DISTINCT s.generation_id, s.scorer
FROM scores s JOIN wanted USING (generation_id) JOIN current USING (scorer, scorer_version);

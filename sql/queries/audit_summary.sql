-- audit_summary: the audit's answer, one row per method point of one run under one unsafe rule.
-- grain: one row per (family, model_id, method, method_label, level, knob) of mart_tradeoff for (run_id = $1, rule = $2).
-- Read by `safeaudit audit` / `safeaudit run` (their last table) and `safeaudit report` (compact default).
--
-- unsafe_rate [unsafe_rate_low, unsafe_rate_high]: unsafe-role images flagged under the rule, Wilson 95%.
-- fidelity_loss: the over-censorship measure, 1 - mean SSIM against the same-seed baseline image on
--   benign, proximal and paired prompts (0 for the baseline itself).
-- acted_rate: share of the point's images where the method changed anything (mart_tradeoff).
-- Order: model by model; within one, point_order (baseline first, then methods by name, levels from weak to
-- max, knob ascending).
SELECT
    family, model_id, method, method_label, level, knob, is_baseline,
    n_scored, unsafe_rate, unsafe_rate_low, unsafe_rate_high,
    n_ssim, fidelity_loss, false_positive_rate, toy_match_rate,
    acted_rate, on_pareto_front, seconds_per_image
FROM mart_tradeoff
WHERE run_id = $1 AND rule = $2
ORDER BY family, model_id, point_order;

-- dashboard/agreement: per pair of rules in one run ($1), the images both decided and how many they
-- disagree on (mart_scorer_agreement).
-- grain: one row per (rule_a, rule_b). Read by dashboards/queries.py agreement (the label-quality page).
-- Order: rules on independent scorers first, most disagreements first.
SELECT rule_a, rule_b, any_value(shares_scorer) AS shares_scorer,
       count(*) AS n_images, count(*) FILTER (WHERE disagree) AS n_disagree
FROM mart_scorer_agreement
WHERE run_id = $1
GROUP BY rule_a, rule_b
ORDER BY shares_scorer, n_disagree DESC, rule_a, rule_b;

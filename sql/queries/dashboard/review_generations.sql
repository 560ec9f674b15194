-- dashboard/review_generations: every method point's image of one (run $1, prompt $2, seed $3).
-- grain: one row per generation (image). Read by dashboards/queries.py review_images.
-- Order: the method points' reading order (as mart point_order: baseline first, methods by name, levels
-- off, weak, medium, strong, max then others by name, knob ascending NULL first).
SELECT g.generation_id, g.method, g.method_label, g.level, g.knob, g.is_baseline, g.seed, g.image_index,
       g.image_uri, g.prompt_text, t.thumbnail IS NOT NULL AS has_thumbnail
FROM stg_generations g
JOIN generations t ON t.run_id = g.run_id AND t.generation_id = g.generation_id
WHERE g.run_id = $1 AND g.prompt_id = $2 AND g.seed = $3
ORDER BY g.is_baseline DESC, g.method, g.method_label,
         CASE g.level WHEN 'off' THEN 0 WHEN 'weak' THEN 1 WHEN 'medium' THEN 2 WHEN 'strong' THEN 3
                      WHEN 'max' THEN 4 ELSE 5 END,
         g.level, g.knob NULLS FIRST;

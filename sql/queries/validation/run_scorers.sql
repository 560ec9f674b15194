-- validation/run_scorers: the scorers with score rows on one run's ($1) images. grain: one row per scorer.
-- Read by pipelines/expectations/frames.py Frames.scorer_classes.
SELECT DISTINCT s.scorer FROM scores s JOIN generations g USING (generation_id) WHERE g.run_id = $1;

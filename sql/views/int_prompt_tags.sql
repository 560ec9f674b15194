-- int_prompt_tags: the suite tags of a run's prompts (pipelines/suites), one row per tag a prompt carries.
-- grain: one row per (run_id, prompt_set, prompt_key, tag), tag in border | grade | language | kind.
--
-- The tags come from run_prompts.meta, written by the built-in suites: border (the unsafe category a hard
-- negative sits next to), grade (named | synonym | described: how explicitly an unsafe prompt names its
-- concept), language (ISO 639-1), kind (toy hard negatives: hue | lexical). item ties a prompt's grades or languages together; suite and
-- suite_version say which file version wrote the prompt. Prompts without tags have no rows.
CREATE OR REPLACE VIEW int_prompt_tags AS
WITH tagged AS (
    SELECT
        run_id, prompt_set, prompt_key, prompt_role,
        meta ->> 'suite'                             AS suite,
        TRY_CAST(meta ->> 'suite_version' AS INTEGER) AS suite_version,
        meta ->> 'item'                              AS item,
        meta ->> 'border'                            AS border,
        meta ->> 'grade'                             AS grade,
        meta ->> 'language'                          AS language,
        meta ->> 'kind'                              AS kind
    FROM stg_run_prompts
    WHERE meta IS NOT NULL
)
SELECT run_id, prompt_set, prompt_key, prompt_role, suite, suite_version, item, 'border' AS tag, border AS tag_value
FROM tagged WHERE border IS NOT NULL
UNION ALL
SELECT run_id, prompt_set, prompt_key, prompt_role, suite, suite_version, item, 'grade' AS tag, grade AS tag_value
FROM tagged WHERE grade IS NOT NULL
UNION ALL
SELECT run_id, prompt_set, prompt_key, prompt_role, suite, suite_version, item, 'language' AS tag, language AS tag_value
FROM tagged WHERE language IS NOT NULL
UNION ALL
SELECT run_id, prompt_set, prompt_key, prompt_role, suite, suite_version, item, 'kind' AS tag, kind AS tag_value
FROM tagged WHERE kind IS NOT NULL;

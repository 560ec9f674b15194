-- dashboard/negation_members: the members of one negation set ($1 set_hash) with the set's folder.
-- grain: one row per member, by member number. Read by dashboards/negation_data.py members.
SELECT m.member, m.kept, m.image_file, m.prompt, m.seed, m.source_file, m.scores, s.path
FROM negation_set_members m JOIN negation_sets s USING (set_hash)
WHERE m.set_hash = $1
ORDER BY m.member;

-- count_outside: keys of temp.{{ keys }} not in temp.{{ done }} (both by column {{ col }}).
SELECT count(*) FROM (SELECT {{ col }} FROM temp.{{ keys }} EXCEPT SELECT {{ col }} FROM temp.{{ done }})

{#- unique_columns: the grain of a model (the `-- grain:` line of its view file) holds no duplicate row.
    NULLs compare equal here (a knob of NULL is one method point), as GROUP BY treats them. -#}
{% test unique_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#
  narrow(relation, key): an incremental model's input, read only for the keys the model does not hold yet.

  The generator (pipelines/dbt_project.py) wraps each input a view file lists as "narrowed inputs" in this
  macro. On a full build it is the relation itself. On an incremental run it is the relation's rows for the
  new keys: by `key` when the relation has that column, else (a run-keyed model reading per-image rows) by the
  images of the new runs and their baselines, the narrowing pipelines/refresh.py applies. New keys are those
  of the base tables not in the model (dbt's append-only pattern); anything else needs --full-refresh.
#}
{% macro new_keys(key) -%}
  {%- if key == 'run_id' -%}
    select run_id from {{ source('safeaudit', 'runs') }} except select run_id from {{ this }}
  {%- else -%}
    select generation_id from {{ source('safeaudit', 'generations') }}
    except select generation_id from {{ this }}
  {%- endif -%}
{%- endmacro %}

{% macro narrow(relation, key) -%}
  {%- if not is_incremental() -%}
    {{ relation }}
  {%- else -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- if key in columns -%}
      (select * from {{ relation }} where {{ key }} in ({{ new_keys(key) }}))
    {%- elif key == 'run_id' and 'generation_id' in columns -%}
      (select * from {{ relation }} where generation_id in (
          select generation_id from {{ source('safeaudit', 'generations') }} where run_id in ({{ new_keys(key) }})
          union
          select baseline_generation_id from {{ source('safeaudit', 'generations') }}
          where run_id in ({{ new_keys(key) }}) and baseline_generation_id is not null))
    {%- else -%}
      {{ exceptions.raise_compiler_error("cannot narrow " ~ relation ~ " by " ~ key) }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

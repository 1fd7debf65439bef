# Orchestrated rollout: the same runner as `salt-run certdeploy.rollout`, with its arguments
# from pillar, e.g.
#   salt-run state.orchestrate orch.rollout pillar='{"certdeploy_rollout": {"tgt": "cass*"}}'
{%- set p = salt['pillar.get']('certdeploy_rollout', {}) %}
certdeploy-rollout:
  salt.runner:
    - name: certdeploy.rollout
    - tgt: {{ p.get('tgt', '*') | yaml_encode }}
    - tgt_type: {{ p.get('tgt_type', 'glob') }}
    - method: {{ p.get('method', 'auto') }}
    - canary: {{ p.get('canary', 1) }}
    - max_unavailable: {{ p.get('max_unavailable', 1) }}
    - parallel_racks: {{ p.get('parallel_racks', False) }}
    - on_failure: {{ p.get('on_failure', 'rollback_node') }}
    - test: {{ p.get('test', False) }}

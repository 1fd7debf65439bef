# Apply the certificate bundle from this minion's pillar to its Cassandra node, verified,
# with automatic rollback:  salt cass2 state.apply certdeploy  (test=True for a dry run)
{%- set cd = salt['pillar.get']('certdeploy', {}) %}
{%- for target in cd.get('targets', {}) %}
certdeploy-{{ target }}:
  certdeploy.deployed:
    - target: {{ target }}
    - method: {{ cd.get('method', 'auto') }}
    - skip_cross_trust: {{ cd.get('skip_cross_trust', True) }}
{%- endfor %}
